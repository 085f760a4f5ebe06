"""Sign-in: who is asking.

``AUTH_MODE=none`` serves without sign-in and is accepted only on a loopback HOST (settings
refuse it elsewhere; the guard serves only loopback Host names then). ``AUTH_MODE=header``
trusts a reverse proxy that signs people in: the TCP peer must be one of TRUSTED_PROXIES, and
the user's name comes in AUTH_HEADER, exactly once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request

from usage_tracker.settings import Settings
from usage_tracker.web.guard import LOOPBACK_HOSTS, PEER, Guard, HostRule
from usage_tracker.web.proxy import ProxyTrust


def install(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings
    app.state.proxy_trust = ProxyTrust.of(settings.trusted_proxies)
    hosts = settings.allowed_hosts
    if settings.auth_mode == "none":
        hosts = (*LOOPBACK_HOSTS, *hosts)
    app.add_middleware(Guard, trust=app.state.proxy_trust, hosts=HostRule(hosts))


def principal(request: Request) -> str:
    """Who is asking: raises 401 unless the request is signed in (or sign-in is off)."""
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "none":
        return "local"
    trust: ProxyTrust = request.app.state.proxy_trust
    names = request.headers.getlist(settings.auth_header)
    if len(names) > 1:
        raise HTTPException(
            400, f"The sign-in header {settings.auth_header} appears more than once."
        )
    user = names[0].strip() if names else ""
    if trust.trusts(request.scope.get(PEER, "")) and user:
        return user
    raise HTTPException(401, "Sign-in required: open this page through the signing-in proxy.")


Principal = Annotated[str, Depends(principal)]

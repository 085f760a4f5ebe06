"""The request guard's settings: proxy trust and allowed Host names (see :mod:`.guard`).

``AUTH_MODE=none`` serves without sign-in and is accepted only on a loopback HOST (settings
refuse it elsewhere), and then only for loopback Host names. Who is signed in is decided in
:mod:`.auth`.
"""

from __future__ import annotations

from fastapi import FastAPI

from usage_tracker.settings import Settings
from usage_tracker.web.guard import LOOPBACK_HOSTS, Guard, HostRule
from usage_tracker.web.proxy import ProxyTrust


def install(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings
    app.state.proxy_trust = ProxyTrust.of(settings.trusted_proxies)
    hosts = settings.allowed_hosts
    if settings.auth_mode == "none":
        hosts = (*LOOPBACK_HOSTS, *hosts)
    app.add_middleware(Guard, trust=app.state.proxy_trust, hosts=HostRule(hosts))

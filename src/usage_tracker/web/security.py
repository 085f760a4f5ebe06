"""Sign-in and security headers.

``AUTH_MODE=none`` serves without sign-in and is accepted only on a loopback HOST (settings
refuse it elsewhere). ``AUTH_MODE=header`` trusts a reverse proxy that signs people in: requests
must come from TRUSTED_PROXIES and carry the user's name in AUTH_HEADER.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from starlette.responses import Response

from usage_tracker.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def install(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def principal(request: Request) -> str:
    """Who is asking: raises 401 unless the request is signed in (or sign-in is off)."""
    settings: Settings = request.app.state.settings
    if settings.auth_mode == "none":
        return "local"
    peer = request.client.host if request.client else ""
    user = request.headers.get(settings.auth_header, "").strip()
    if peer in settings.trusted_proxies and user:
        return user
    raise HTTPException(401, "Sign-in required: open this page through the signing-in proxy.")


Principal = Annotated[str, Depends(principal)]

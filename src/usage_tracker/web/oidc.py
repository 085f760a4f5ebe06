"""Sign-in with any OpenID Connect issuer (``AUTH_MODE=oidc``), through Authlib.

Discovery from ``OIDC_ISSUER``; the authorization-code flow with PKCE (S256), ``state`` and
``nonce``, all checked by Authlib. The flow's state lives for ten minutes in a signed cookie;
once the provider vouches for a verified email (within OIDC_ALLOWED_DOMAINS), the person gets
the same server-side session as a password sign-in, and an account (role from ADMIN_EMAILS or
OIDC_DEFAULT_ROLE) when they have none yet.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.middleware.sessions import SessionMiddleware

from usage_tracker import __version__
from usage_tracker.people.access import normal_email
from usage_tracker.settings import Settings
from usage_tracker.store import accounts as rows
from usage_tracker.web.auth import SESSION_COOKIE
from usage_tracker.web.signin import safe_next, set_session_cookie, start_session
from usage_tracker.web.state import app_state
from usage_tracker.web.templating import templates

log = logging.getLogger(__name__)
FLOW_COOKIE = "ut_oidc"
CALLBACK = "/login/oidc/callback"

router = APIRouter(include_in_schema=False)


def install(app: FastAPI, settings: Settings, secret: str) -> None:
    """Register the provider and the short-lived cookie that carries the flow's state."""
    if not (settings.oidc_issuer and settings.oidc_client_id and settings.public_url):
        raise ValueError("AUTH_MODE=oidc needs OIDC_ISSUER, OIDC_CLIENT_ID and PUBLIC_URL")
    oauth = OAuth()
    oauth.register(
        "provider",
        server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_id=settings.oidc_client_id,
        client_secret=(
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        ),
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    app.state.oauth = oauth
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=FLOW_COOKIE,
        max_age=600,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    app.include_router(router)


def _refused(request: Request, message: str, status: int) -> HTMLResponse:
    context = {"request": request, "version": __version__, "message": message}
    return templates.TemplateResponse(request, "refused.html", context, status_code=status)


@router.get("/login/oidc")
async def start(request: Request) -> Response:
    settings = app_state(request).settings
    assert settings.public_url
    request.session["next"] = safe_next(request.query_params.get("next"))
    redirect_uri = settings.public_url.rstrip("/") + CALLBACK
    nonce = secrets.token_urlsafe(24)
    client = request.app.state.oauth.provider
    response: Response = await client.authorize_redirect(request, redirect_uri, nonce=nonce)
    return response


@router.get(CALLBACK)
async def callback(request: Request) -> Response:
    """The provider sends people back here; Authlib checks state, PKCE and nonce."""
    client = request.app.state.oauth.provider
    try:
        token = await client.authorize_access_token(request)
    except (OAuthError, JoseError, KeyError, TypeError, ValueError) as e:
        # A wrong state, a code of another flow, a nonce or signature that does not match.
        log.warning("OpenID sign-in refused: %s", e)
        message = (
            "The sign-in could not be completed (it expired, was started elsewhere or was "
            "altered). Please start again."
        )
        return _refused(request, message, 400)
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    problem, email = _accepted_email(app_state(request).settings, claims)
    if problem:
        return _refused(request, problem, 403)
    _keep_team(request, email, claims)
    return _sign_in(request, email, claims.get("name"))


def _keep_team(request: Request, email: str, claims: dict[str, Any]) -> None:
    """The person's team as the provider's OIDC_TEAM_CLAIM says (none: what it said goes)."""
    from usage_tracker.store import people

    state = app_state(request)
    claim = state.settings.oidc_team_claim
    if not claim:
        return
    value = claims.get(claim)
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    team = value.strip()[:200] if isinstance(value, str) and value.strip() else None
    with state.store.transaction() as conn:
        if people.set_person_team(
            conn, email, team, source=people.OIDC, actor="oidc", now=int(time.time())
        ):
            people.record(
                conn, "oidc", "team", f"team: {email} in {team!r} (sign-in)", int(time.time())
            )


def _accepted_email(settings: Settings, claims: dict[str, Any]) -> tuple[str | None, str]:
    try:
        email = normal_email(str(claims.get("email") or ""))
    except ValueError:
        return "Your identity provider did not give an email address.", ""
    if claims.get("email_verified") is False:
        return f"{email} is not verified by your identity provider.", email
    domains = settings.oidc_allowed_domains
    if domains and email.rsplit("@", 1)[1] not in {d.lower() for d in domains}:
        allowed = ", ".join(domains)
        return f"{email} may not sign in here: only addresses at {allowed} may.", email
    return None, email


def _sign_in(request: Request, email: str, name: object) -> Response:
    state = app_state(request)
    settings = state.settings
    now = int(time.time())
    with state.store.transaction() as conn:
        if rows.account(conn, email) is None:
            role = "admin" if email in settings.admin_emails else settings.oidc_default_role
            shown = str(name) if isinstance(name, str) and name.strip() else None
            rows.save_account(conn, email, role=role, name=shown, password_hash=None, now=now)
        token = start_session(conn, email, now)
    target = safe_next(request.session.pop("next", "/"))
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    return response


__all__ = ["SESSION_COOKIE", "install"]

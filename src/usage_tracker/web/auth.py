"""Who is asking, and what they may read: applied once, below the routes.

Every data route depends on :data:`Viewer` (or :data:`Admin`): a principal from a bearer API
token (every mode), a session cookie (``AUTH_MODE=password``), the trusted proxy's header
(``header``) or nobody at all (``none``, loopback only), turned into the :class:`Scope` of
usage it may read. Routes hand that scope to the reports; none filters rows on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from usage_tracker.people.access import Principal, digest
from usage_tracker.people.names import Names
from usage_tracker.people.scope import Scope
from usage_tracker.settings import Settings
from usage_tracker.store import accounts as rows
from usage_tracker.web.guard import PEER
from usage_tracker.web.proxy import ProxyTrust
from usage_tracker.web.results import Version
from usage_tracker.web.state import AppState, app_state

SESSION_COOKIE = "ut_session"
CSRF_HEADER = "X-CSRF-Token"
PRINCIPAL = "usage_tracker.principal"
"""Scope key of the request's principal, once found."""
TOUCH_EVERY = 60
"""A session's last use is written at most once a minute, not on every request."""


class SignInRequired(Exception):
    """No valid sign-in: the API answers 401, pages redirect to the login page."""

    def __init__(self, message: str = "Sign-in required.") -> None:
        super().__init__(message)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def principal(request: Request) -> Principal:
    """Who is asking; raises SignInRequired when nobody valid is."""
    return _resolve(request, with_version=False)[0]


def _resolve(request: Request, *, with_version: bool) -> tuple[Principal, int | None]:
    """Who is asking and, when asked, the data's version: one connection for both (a request
    reads the database once before its answer, or not at all when both are known), each
    statement on its own (they need no common snapshot; a session touched or ended is one
    statement, committed at once)."""
    state = app_state(request)
    found: Principal | SignInRequired | None = request.scope.get(PRINCIPAL)
    if found is None and _bearer(request) is None and state.settings.auth_mode == "none":
        found = Principal("local", "admin", "none", name="local")
    if isinstance(found, Principal) and not with_version:
        request.scope[PRINCIPAL] = found
        return found, None
    with state.store.autocommit() as conn:
        if found is None:
            found = _find_principal(request, state, conn)
        version = state.store.data_version(conn) if with_version else None
    if isinstance(found, SignInRequired):
        raise found  # after the transaction: an ended session stays ended
    request.scope[PRINCIPAL] = found
    return found, version


def _find_principal(
    request: Request, state: AppState, conn: Connection
) -> Principal | SignInRequired:
    token = _bearer(request)
    if token is not None:
        return _token_principal(state, conn, token)
    if state.settings.auth_mode == "header":
        return _header_principal(request, state, conn)
    return _session_principal(request, state, conn)


def _role_of(state: AppState, email: str, account_role: str | None) -> str:
    if email in state.settings.admin_emails:
        return "admin"
    return account_role or state.settings.oidc_default_role


def _token_principal(state: AppState, conn: Connection, token: str) -> Principal | SignInRequired:
    now = int(time.time())
    found = rows.token_account(conn, digest(token))
    if found is None or found["revoked_at"] is not None:
        return SignInRequired("This API token is unknown or has been revoked.")
    if found["email"] is None:
        return SignInRequired("This API token's account no longer exists.")
    if not found["last_used_at"] or now - found["last_used_at"] > TOUCH_EVERY:
        rows.touch_token(conn, found["id"], now)
    role = _role_of(state, found["email"], found["role"])
    return Principal(
        found["email"],
        role,  # type: ignore[arg-type]
        "token",
        name=found["name"],
        team=found["team"],
    )


def _header_principal(request: Request, state: AppState, conn: Connection) -> Principal:
    settings: Settings = state.settings
    trust: ProxyTrust = request.app.state.proxy_trust
    values = request.headers.getlist(settings.auth_header)
    if len(values) > 1:
        raise HTTPException(
            400, f"The sign-in header {settings.auth_header} appears more than once."
        )
    user = values[0].strip().lower() if values else ""
    if not (user and trust.trusts(request.scope.get(PEER, ""))):
        raise SignInRequired("Sign-in required: open this page through the signing-in proxy.")
    account = rows.account(conn, user)
    role = _role_of(state, user, account["role"] if account else None)
    name = account["name"] if account else None
    team = account["team"] if account else None
    return Principal(user, role, "header", name=name, team=team)  # type: ignore[arg-type]


def _session_principal(
    request: Request, state: AppState, conn: Connection
) -> Principal | SignInRequired:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return SignInRequired()
    settings = state.settings
    now = int(time.time())
    session = rows.session(conn, digest(token))
    if session is None:
        return SignInRequired("Your session has ended; please sign in again.")
    idle = now - session["last_seen_at"] > settings.session_idle_minutes * 60
    old = now - session["created_at"] > settings.session_max_hours * 3600
    account = rows.account(conn, session["email"])
    if idle or old or account is None:
        rows.end_session(conn, session["token_hash"])
        return SignInRequired("Your session has ended; please sign in again.")
    if now - session["last_seen_at"] > TOUCH_EVERY:
        rows.touch_session(conn, session["token_hash"], now)
    role = _role_of(state, account["email"], account["role"])
    return Principal(
        account["email"],
        role,  # type: ignore[arg-type]
        "session",
        name=account["name"],
        csrf=session["csrf"],
        team=account["team"],
    )


def csrf_token(request: Request, who: Principal) -> str:
    """The token a form or script must send back with a state-changing request: the session's
    own, or (sign-in without sessions) one bound to the person by the server's secret."""
    if who.csrf:
        return who.csrf
    key = app_state(request).csrf_key
    return hmac.new(key, f"csrf:{who.email}".encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, who: Principal, submitted: str | None) -> None:
    """Refuse a state-changing request without the right token (API tokens need none: a
    browser never sends them on its own)."""
    if who.via == "token":
        return
    sent = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(sent, csrf_token(request, who)):
        raise HTTPException(
            403, "This form has expired or did not come from this site; reload and try again."
        )


@dataclass(frozen=True)
class Access:
    """A request's principal, the usage it may read, and the names of things as of now."""

    who: Principal
    scope: Scope
    names: Names
    version: Version
    """The data's version these names (and any cached report) are of."""


def access(request: Request, who: Principal | None = None) -> Access:
    """The request's :class:`Access` (its principal found first unless given)."""
    results = app_state(request).results
    if who is None:
        who, data_version = _resolve(request, with_version=True)
        version = results.version(data_version)
    else:
        version = results.version()
    names = results.names(version)
    signed_in = who

    def scope() -> Scope:
        keys = set(names.keys) | set(names.owners)
        return signed_in.scope(((k, names.email(k)) for k in keys), names.team)

    cached = ("scope", version, who.email, who.role, who.team)
    return Access(who, results.get(cached, scope), names, version)


# The dependencies: each resolves in one trip to a worker thread (the database is read there),
# not one per dependency; a route that needs neither more reading nor waiting may then answer
# on the event loop.


async def _signed_in(request: Request) -> Principal:
    cached = request.scope.get(PRINCIPAL)
    if isinstance(cached, Principal):
        return cached
    return await run_in_threadpool(principal, request)


async def _viewer(request: Request) -> Access:
    return await run_in_threadpool(access, request)


async def _staff(request: Request) -> Access:
    got = await run_in_threadpool(access, request)
    if not got.who.is_staff:
        raise HTTPException(403, "Only admins and viewers see the organization's limits.")
    return got


async def _admin(who: Annotated[Principal, Depends(_signed_in)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "Only an admin may do this.")
    return who


CsrfForm = Annotated[str, Form(alias="csrf_token", max_length=200)]
"""A state-changing form's CSRF token field (checked with :func:`check_csrf`)."""
CurrentUser = Annotated[Principal, Depends(_signed_in)]
"""Anyone signed in."""
Viewer = Annotated[Access, Depends(_viewer)]
"""Anyone signed in, with the scope of their role."""
Staff = Annotated[Access, Depends(_staff)]
"""An admin or a viewer (everything in view), not a member."""
Admin = Annotated[Principal, Depends(_admin)]
"""Only an admin."""

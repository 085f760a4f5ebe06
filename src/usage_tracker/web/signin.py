"""Signing in and out (``AUTH_MODE=password``), and API tokens on the page (admins).

Sessions live in the database: the cookie holds a random token (HttpOnly, SameSite=Lax, Secure
when the request came over HTTPS through a trusted proxy) and the database its SHA-256, so a
session can be ended everywhere. Failed sign-ins are throttled per account and per address.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from usage_tracker import __version__
from usage_tracker.people.access import (
    digest,
    new_token,
    normal_email,
    password_matches,
    spend_verification_time,
)
from usage_tracker.store import accounts as rows
from usage_tracker.web.auth import (
    SESSION_COOKIE,
    Admin,
    CsrfForm,
    CurrentUser,
    check_csrf,
    csrf_token,
)
from usage_tracker.web.state import AppState, app_state
from usage_tracker.web.templating import templates

LOGIN_COOKIE = "ut_login"
"""Double-submit token of the login form (there is no session yet to bind it to)."""

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another origin (``//evil``, ``https://…``)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _login_page(
    request: Request,
    *,
    error: str | None = None,
    email: str = "",
    status: int = 200,
    next_: str | None = None,
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    settings = app_state(request).settings
    context: dict[str, Any] = {
        "request": request,
        "version": __version__,
        "error": error,
        "email": email,
        "login_token": token,
        "next": safe_next(next_ or request.query_params.get("next")),
        "mode": settings.auth_mode,
        "issuer_name": _issuer_name(settings.oidc_issuer),
    }
    response = templates.TemplateResponse(request, "login.html", context, status_code=status)
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _issuer_name(issuer: str | None) -> str:
    """``https://accounts.google.com`` → ``accounts.google.com``."""
    return (issuer or "").split("://", 1)[-1].split("/", 1)[0] or "your provider"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    _set_cookie(request, response, SESSION_COOKIE, token)


def start_session(conn: Connection, email: str, now: int) -> str:
    """A new session of ``email`` (its SHA-256 and CSRF token stored); the token for the cookie
    (:func:`set_session_cookie`)."""
    token = secrets.token_urlsafe(32)
    rows.create_session(conn, digest(token), email, secrets.token_urlsafe(24), now)
    return token


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    state = app_state(request)
    if state.settings.auth_mode != "password":
        raise HTTPException(404, "Password sign-in is not enabled (AUTH_MODE).")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, login_token):
        return _login_page(
            request, error="The form expired; please try again.", status=403, next_=next
        )
    address = request.client.host if request.client else ""
    try:
        email = normal_email(email)
    except ValueError:
        return _login_page(
            request, error="Enter your email address.", email=email, status=400, next_=next
        )
    attempt = state.throttle.attempt(email, address)
    if attempt is None:
        message = "Too many failed sign-ins; wait a minute and try again."
        return _login_page(request, error=message, email=email, status=429, next_=next)
    with state.store.transaction() as conn:
        account = rows.account(conn, email)
    password_hash = account["password_hash"] if account else None
    if not password_hash:
        # No account, or one without a password (OIDC, header): the same argon2 work as a
        # wrong password, so the answer's time tells nothing.
        spend_verification_time(password)
    if not password_hash or not password_matches(password_hash, password):
        message = "That email and password do not match an account."
        return _login_page(request, error=message, email=email, status=401, next_=next)
    state.throttle.succeeded(attempt)
    with state.store.transaction() as conn:
        token = start_session(conn, email, int(time.time()))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(
    request: Request,
    who: CurrentUser,
    csrf_token_: CsrfForm = "",
    everywhere: Annotated[bool, Form()] = False,
) -> Response:
    """Sign out here, or (``everywhere``) end every session of this account."""
    check_csrf(request, who, csrf_token_)
    state = app_state(request)
    token = request.cookies.get(SESSION_COOKIE)
    with state.store.transaction() as conn:
        if everywhere:
            rows.end_sessions(conn, who.email)
        elif token:
            rows.end_session(conn, digest(token))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- API tokens (admins) --------------------------------------------------------------------


def _tokens_page(request: Request, who: Any, created: str | None = None) -> HTMLResponse:
    state = app_state(request)
    with state.store.transaction() as conn:
        tokens = rows.tokens(conn)
        people = rows.accounts(conn)
    context = {
        "request": request,
        "version": __version__,
        "who": who,
        "csrf": csrf_token(request, who),
        "tokens": tokens,
        "accounts": people,
        "created": created,
    }
    return templates.TemplateResponse(request, "tokens.html", context)


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, who: Admin) -> HTMLResponse:
    return _tokens_page(request, who)


@router.post("/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    who: Admin,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token_: CsrfForm = "",
) -> HTMLResponse:
    check_csrf(request, who, csrf_token_)
    token = issue_token(app_state(request), email, name or None)
    response = _tokens_page(request, who, created=token)
    response.headers["Cache-Control"] = "no-store"  # the page holds the new token once
    return response


def issue_token(state: AppState, email: str, name: str | None) -> str:
    """A new API token for the account ``email``; only its hash is kept."""
    try:
        email = normal_email(email)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    token = new_token()
    with state.store.transaction() as conn:
        if rows.account(conn, email) is None:
            raise HTTPException(400, f"There is no account {email}.")
        rows.create_token(conn, token, email, name=name, now=int(time.time()))
    return token


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    who: Admin,
    token_id: int,
    csrf_token_: CsrfForm = "",
) -> Response:
    check_csrf(request, who, csrf_token_)
    with app_state(request).store.transaction() as conn:
        if not rows.revoke_token(conn, token_id, int(time.time())):
            raise HTTPException(404, "No such active token.")
    return RedirectResponse("/tokens", status_code=303)

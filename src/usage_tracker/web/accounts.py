"""Accounts on a page: the first admin's one-time setup link, the Accounts page where admins add
people, change their roles and remove them, and the one-time links with which a person added
there chooses their password (``AUTH_MODE=password``).

A link is a random token shown once; the database keeps only its SHA-256 (``app_secrets``
``link:<digest>``, with the email, role and expiry as JSON), so a copy of the database cannot
be used to sign in. Every change is written to the audit log.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from usage_tracker import __version__
from usage_tracker.people.access import ROLES, digest, hash_password, new_secret, normal_email
from usage_tracker.settings import Settings, SettingsError
from usage_tracker.store import Store
from usage_tracker.store import accounts as rows
from usage_tracker.store import people as audit
from usage_tracker.web.auth import Admin, CsrfForm, check_csrf, csrf_token
from usage_tracker.web.signin import set_session_cookie, start_session
from usage_tracker.web.state import app_state
from usage_tracker.web.templating import templates

router = APIRouter(include_in_schema=False)

FIRST_ADMIN = "(first admin)"
"""The email of a first-admin link that lets the person type their own."""
INVITE_DAYS = 7
"""How long a link given on the Accounts page works."""
_LINK = "link:"


@dataclass(frozen=True)
class Link:
    email: str
    role: str
    expires: int | None

    @property
    def first_admin(self) -> bool:
        return self.email == FIRST_ADMIN


def _store_link(conn: Connection, link: Link) -> str:
    token = new_secret()
    value = json.dumps({"email": link.email, "role": link.role, "expires": link.expires})
    rows.set_secret(conn, _LINK + digest(token), value)
    return token


def _open_link(conn: Connection, token: str, now: int) -> Link | None:
    stored = rows.stored_secret(conn, _LINK + digest(token))
    if stored is None:
        return None
    found = json.loads(stored)
    link = Link(found["email"], found["role"], found["expires"])
    if link.expires is not None and link.expires < now:
        return None
    return link


def _forget_first_admin_links(conn: Connection) -> None:
    for name, value in rows.secrets_named(conn, _LINK):
        if json.loads(value)["email"] == FIRST_ADMIN:
            rows.set_secret(conn, name, None)


def _base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def first_admin(settings: Settings, store: Store, now: int | None = None) -> list[str]:
    """What ``serve`` says at start-up about the first admin (``AUTH_MODE=password``). When no
    admin can sign in yet: the account of the first of ADMIN_EMAILS with the password in
    ADMIN_PASSWORD_FILE, or else a one-time setup link (a new one at each start, the older ones
    forgotten). Raises SettingsError on an unusable ADMIN_PASSWORD_FILE."""
    if settings.auth_mode != "password":
        return []
    now = int(time.time()) if now is None else now
    with store.transaction() as conn:
        if rows.admins_who_can_sign_in(conn, settings.admin_emails):
            _forget_first_admin_links(conn)
            return []
        if settings.admin_password_file is not None:
            email = _admin_from_file(conn, settings, now)
            _forget_first_admin_links(conn)
            return [f"created the first admin, {email}, with the password in ADMIN_PASSWORD_FILE"]
        _forget_first_admin_links(conn)
        token = _store_link(conn, Link(FIRST_ADMIN, "admin", None))
    return [
        "No admin can sign in yet. To create the first one, open (once; every start makes a "
        "new link and only the newest works):",
        f"  {_base_url(settings)}/setup/{token}",
    ]


def _admin_from_file(conn: Connection, settings: Settings, now: int) -> str:
    path = settings.admin_password_file
    if not settings.admin_emails:
        raise SettingsError("ADMIN_PASSWORD_FILE needs ADMIN_EMAILS: whose password it is")
    try:
        password = path.read_text().strip() if path else ""
    except OSError as e:
        raise SettingsError(f"ADMIN_PASSWORD_FILE: cannot read {path}: {e.strerror}") from None
    try:
        hashed = hash_password(password)
    except ValueError as e:
        raise SettingsError(f"ADMIN_PASSWORD_FILE: {e}") from None
    email = settings.admin_emails[0]
    rows.save_account(conn, email, role="admin", name=None, password_hash=hashed, now=now)
    audit.record(conn, "ADMIN_PASSWORD_FILE", "account.add", f"{email} as admin", now)
    return email


# -- choosing a password through a link -----------------------------------------------------


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context = {"request": request, "version": __version__, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the path holds the link's token
    return response


_GONE = (
    "This link has been used, has expired or was replaced by a newer one. Ask an admin for a "
    "new one (the first admin's link is printed again when the server restarts)."
)


@router.get("/setup/{token}", response_class=HTMLResponse)
def setup_form(request: Request, token: str) -> HTMLResponse:
    state = app_state(request)
    with state.store.transaction() as conn:
        link = _open_link(conn, token, int(time.time()))
    if link is None:
        return _page(request, "setup.html", 404, error=_GONE, link=None)
    email = state.settings.admin_emails[0] if state.settings.admin_emails else ""
    return _page(request, "setup.html", link=link, email=email, token=token)


@router.post("/setup/{token}", response_class=HTMLResponse)
def setup(
    request: Request,
    token: str,
    password: Annotated[str, Form(max_length=1024)],
    password_again: Annotated[str, Form(max_length=1024)],
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The token in the path is the form's own proof of origin: a forged form cannot know it."""
    state = app_state(request)
    now = int(time.time())
    with state.store.transaction() as conn:
        link = _open_link(conn, token, now)
    if link is None:
        return _page(request, "setup.html", 404, error=_GONE, link=None)
    shown = {"link": link, "email": email, "name": name, "token": token}  # typed again
    try:
        chosen = normal_email(email) if link.first_admin else link.email
        if password != password_again:
            raise ValueError("The two passwords differ.")
        hashed = hash_password(password)
    except ValueError as e:
        return _page(request, "setup.html", 400, error=str(e), **shown)
    with state.store.transaction() as conn:
        if _open_link(conn, token, now) is None:  # used meanwhile
            return _page(request, "setup.html", 404, error=_GONE, link=None)
        rows.set_secret(conn, _LINK + digest(token), None)
        if link.first_admin:
            rows.save_account(
                conn, chosen, role="admin", name=name or None, password_hash=hashed, now=now
            )
            audit.record(conn, chosen, "account.add", f"{chosen} as admin (setup link)", now)
        elif not rows.set_password_hash(conn, chosen, hashed):
            return _page(request, "setup.html", 404, error=_GONE, link=None)
        else:
            audit.record(conn, chosen, "account.password", f"{chosen} (link)", now)
        session = start_session(conn, chosen, now)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, session)
    return response


# -- the Accounts page (admins) -------------------------------------------------------------


def _accounts_page(
    request: Request, who: Any, *, link: tuple[str, str] | None = None, error: str | None = None
) -> HTMLResponse:
    state = app_state(request)
    with state.store.transaction() as conn:
        people = rows.accounts(conn)
    status = 400 if error else 200
    return _page(
        request,
        "accounts.html",
        status,
        who=who,
        csrf=csrf_token(request, who),
        accounts=people,
        roles=ROLES,
        mode=state.settings.auth_mode,
        admin_emails=state.settings.admin_emails,
        link=link,
        error=error,
        invite_days=INVITE_DAYS,
    )


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, who: Admin) -> HTMLResponse:
    return _accounts_page(request, who)


def _invite(request: Request, conn: Connection, email: str, role: str, now: int) -> str:
    token = _store_link(conn, Link(email, role, now + INVITE_DAYS * 86400))
    base = app_state(request).settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/setup/{token}"


@router.post("/accounts", response_class=HTMLResponse)
def save_account(
    request: Request,
    who: Admin,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=20)],
    name: Annotated[str, Form(max_length=200)] = "",
    team: Annotated[str, Form(max_length=200)] = "",
    csrf_token_: CsrfForm = "",
) -> Response:
    """Add an account, or change an account's role (and name when one is given; and team, a
    lead's)."""
    check_csrf(request, who, csrf_token_)
    try:
        email = normal_email(email)
    except ValueError as e:
        return _accounts_page(request, who, error=str(e))
    if role not in ROLES:
        return _accounts_page(request, who, error=f"Unknown role {role!r}.")
    team = team.strip()
    if role == "lead" and not team:
        return _accounts_page(request, who, error="A lead needs the team they lead.")
    state = app_state(request)
    now = int(time.time())
    link = None
    with state.store.transaction() as conn:
        existing = rows.account(conn, email)
        if role != "admin" and _last_admin(conn, existing, state.settings):
            return _accounts_page(request, who, error=f"{email} is the last admin who can sign in.")
        rows.save_account(
            conn, email, role=role, name=name or None, password_hash=None, now=now, team=team
        )
        change = "account.role" if existing is not None else "account.add"
        of = f" of {team}" if role == "lead" else ""
        audit.record(conn, who.email, change, f"{email} as {role}{of}", now)
        if existing is None and state.settings.auth_mode == "password":
            link = (email, _invite(request, conn, email, role, now))
    if link is None:
        return RedirectResponse("/accounts", status_code=303)
    return _accounts_page(request, who, link=link)


def _last_admin(conn: Connection, account: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether ``account`` is the only admin who can sign in with a password (outside password
    mode, ADMIN_EMAILS are the admins of last resort)."""
    if account is None or settings.auth_mode != "password" or not account["password_hash"]:
        return False
    if account["role"] != "admin" and account["email"] not in settings.admin_emails:
        return False
    return rows.admins_who_can_sign_in(conn, settings.admin_emails) <= 1


@router.post("/accounts/{email}/link", response_class=HTMLResponse)
def password_link(
    request: Request,
    who: Admin,
    email: str,
    csrf_token_: CsrfForm = "",
) -> Response:
    """A new one-time link with which ``email`` chooses a password (a forgotten one, say)."""
    check_csrf(request, who, csrf_token_)
    now = int(time.time())
    with app_state(request).store.transaction() as conn:
        account = rows.account(conn, email)
        if account is None:
            raise HTTPException(404, f"There is no account {email}.")
        link = (email, _invite(request, conn, email, account["role"], now))
        audit.record(conn, who.email, "account.link", email, now)
    return _accounts_page(request, who, link=link)


@router.post("/accounts/{email}/remove")
def remove_account(
    request: Request,
    who: Admin,
    email: str,
    csrf_token_: CsrfForm = "",
) -> Response:
    """Remove the account: its sessions end and its tokens are revoked."""
    check_csrf(request, who, csrf_token_)
    if email == who.email:
        return _accounts_page(request, who, error="You cannot remove your own account.")
    now = int(time.time())
    settings = app_state(request).settings
    with app_state(request).store.transaction() as conn:
        if _last_admin(conn, rows.account(conn, email), settings):
            return _accounts_page(request, who, error=f"{email} is the last admin who can sign in.")
        if not rows.remove_account(conn, email, now):
            raise HTTPException(404, f"There is no account {email}.")
        audit.record(conn, who.email, "account.remove", email, now)
    return RedirectResponse("/accounts", status_code=303)

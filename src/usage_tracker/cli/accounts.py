"""``usage-tracker user …`` and ``usage-tracker token …``: accounts and API tokens.

Passwords are never arguments (they would land in shell history and ``ps``): they are prompted
for, or read from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from usage_tracker import runtime
from usage_tracker.people.access import ROLES, hash_password, new_token, normal_email
from usage_tracker.settings import SettingsError, load_settings
from usage_tracker.store import Store, StoreUnavailableError
from usage_tracker.store import accounts as rows
from usage_tracker.text.untrusted import terminal

users = typer.Typer(help="Accounts that may sign in (AUTH_MODE=password), and their roles.")
tokens = typer.Typer(help="API tokens for scripts: Authorization: Bearer <token>.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _store() -> Store:
    try:
        return runtime.open_store(load_settings())
    except (SettingsError, StoreUnavailableError) as e:
        raise _fail(str(e)) from None


def _email(value: str) -> str:
    try:
        return normal_email(value)
    except ValueError as e:
        raise _fail(str(e)) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return hash_password(password)
    except ValueError as e:
        raise _fail(str(e)) from None


RoleOption = Annotated[str, typer.Option(help="admin, viewer, lead or member.")]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


@users.command("add")
def add_user(
    email: str,
    role: RoleOption = "member",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    team: Annotated[
        str | None, typer.Option(help="A lead's team (the mapping file's teams).")
    ] = None,
    password_stdin: StdinOption = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password (sign-in by proxy or token).")
    ] = False,
) -> None:
    """Add an account, or change its role and name (and password)."""
    email = _email(email)
    if role not in ROLES:
        raise _fail(f"unknown role {role!r}; choose admin, viewer, lead or member")
    if (role == "lead") != bool(team and team.strip()):
        raise _fail("--team names the team of a lead, and only of a lead")
    hashed = None if no_password else _password(password_stdin)
    store = _store()
    with store.transaction() as conn:
        rows.save_account(
            conn,
            email,
            role=role,
            name=name,
            password_hash=hashed,
            now=int(time.time()),
            team=team.strip() if team else None,
        )
    store.close()
    typer.echo(f"{email}: {role}" + (f" of {terminal(team.strip())}" if team else ""))


@users.command("list")
def list_users() -> None:
    """Every account with its role."""
    store = _store()
    with store.transaction() as conn:
        found = rows.accounts(conn)
    store.close()
    for account in found:
        password = "password" if account["password_hash"] else "no password"
        name = terminal(account["name"] or "")
        role = account["role"] + (f" of {terminal(account['team'])}" if account["team"] else "")
        typer.echo(f"{terminal(account['email'])}\t{role}\t{name}\t{password}")


@users.command("remove")
def remove_user(email: str) -> None:
    """Remove an account: its sessions end and its tokens are revoked."""
    email = _email(email)
    store = _store()
    with store.transaction() as conn:
        removed = rows.remove_account(conn, email, int(time.time()))
    store.close()
    if not removed:
        raise _fail(f"there is no account {email}")
    typer.echo(f"{email}: removed; its sessions ended and its tokens revoked")


@users.command("passwd")
def change_password(email: str, password_stdin: StdinOption = False) -> None:
    """Set a new password; every session of the account ends."""
    email = _email(email)
    hashed = _password(password_stdin)
    store = _store()
    with store.transaction() as conn:
        changed = rows.set_password_hash(conn, email, hashed)
        if changed:
            rows.end_sessions(conn, email)
    store.close()
    if not changed:
        raise _fail(f"there is no account {email}")
    typer.echo(f"{email}: password changed; signed out everywhere")


@tokens.command("create")
def create_token(
    email: str, name: Annotated[str | None, typer.Option(help="What the token is for.")] = None
) -> None:
    """Print a new API token for the account EMAIL (shown once; only its hash is kept)."""
    email = _email(email)
    token = new_token()
    store = _store()
    with store.transaction() as conn:
        if rows.account(conn, email) is None:
            store.close()
            raise _fail(f"there is no account {email}; add it with `usage-tracker user add`")
        rows.create_token(conn, token, email, name=name, now=int(time.time()))
    store.close()
    typer.echo(token)

"""SQL of sign-in: accounts, server-side sessions, API tokens and generated secrets.
Every function runs on a connection inside :meth:`Store.transaction`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from usage_tracker.people.access import digest

from . import schema

Row = dict[str, Any]


def _one(conn: Connection, query: Any, parameters: dict[str, Any] | None = None) -> Row | None:
    row = conn.execute(query, parameters).mappings().first()
    return dict(row) if row else None


# -- accounts -------------------------------------------------------------------------------


# Read on every signed-in request: built once, run with parameters.
_ACCOUNT = select(schema.accounts).where(schema.accounts.c.email == bindparam("email"))
_SESSION = select(schema.sessions).where(schema.sessions.c.token_hash == bindparam("token_hash"))
_TOKEN = select(schema.api_tokens).where(schema.api_tokens.c.token_hash == bindparam("token_hash"))
_TOKEN_ACCOUNT = (
    select(
        schema.api_tokens.c.id,
        schema.api_tokens.c.last_used_at,
        schema.api_tokens.c.revoked_at,
        schema.accounts.c.email,
        schema.accounts.c.role,
        schema.accounts.c.name,
        schema.accounts.c.team,
    )
    .select_from(
        schema.api_tokens.outerjoin(
            schema.accounts, schema.accounts.c.email == schema.api_tokens.c.email
        )
    )
    .where(schema.api_tokens.c.token_hash == bindparam("token_hash"))
)


def account(conn: Connection, email: str) -> Row | None:
    return _one(conn, _ACCOUNT, {"email": email})


def accounts(conn: Connection) -> list[Row]:
    query = select(schema.accounts).order_by(schema.accounts.c.email)
    return [dict(r) for r in conn.execute(query).mappings()]


def save_account(
    conn: Connection,
    email: str,
    *,
    role: str,
    name: str | None,
    password_hash: str | None,
    now: int,
    team: str | None = None,
) -> None:
    """Create the account, or change its role (and team: a lead's), name and (when given)
    password hash."""
    table = schema.accounts
    team = team if role == "lead" else None
    if account(conn, email) is None:
        conn.execute(
            insert(table).values(
                email=email,
                role=role,
                name=name,
                password_hash=password_hash,
                created_at=now,
                team=team,
            )
        )
        return
    values: dict[str, Any] = {"role": role, "team": team}
    if name is not None:
        values["name"] = name
    if password_hash is not None:
        values["password_hash"] = password_hash
    conn.execute(update(table).where(table.c.email == email).values(**values))


def set_password_hash(conn: Connection, email: str, password_hash: str) -> bool:
    table = schema.accounts
    done = conn.execute(
        update(table).where(table.c.email == email).values(password_hash=password_hash)
    )
    return bool(done.rowcount)


def remove_account(conn: Connection, email: str, now: int) -> bool:
    """Delete the account, end its sessions and revoke its tokens."""
    end_sessions(conn, email)
    tokens = schema.api_tokens
    conn.execute(
        update(tokens)
        .where(tokens.c.email == email, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    done = conn.execute(delete(schema.accounts).where(schema.accounts.c.email == email))
    return bool(done.rowcount)


# -- sessions -------------------------------------------------------------------------------


def create_session(conn: Connection, token_hash: str, email: str, csrf: str, now: int) -> None:
    conn.execute(
        insert(schema.sessions).values(
            token_hash=token_hash, email=email, csrf=csrf, created_at=now, last_seen_at=now
        )
    )


def session(conn: Connection, token_hash: str) -> Row | None:
    return _one(conn, _SESSION, {"token_hash": token_hash})


def touch_session(conn: Connection, token_hash: str, now: int) -> None:
    table = schema.sessions
    conn.execute(update(table).where(table.c.token_hash == token_hash).values(last_seen_at=now))


def end_session(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(schema.sessions).where(schema.sessions.c.token_hash == token_hash))


def end_sessions(conn: Connection, email: str) -> int:
    return int(
        conn.execute(delete(schema.sessions).where(schema.sessions.c.email == email)).rowcount
    )


def end_stale_sessions(conn: Connection, idle_before: int, created_before: int) -> None:
    table = schema.sessions
    conn.execute(
        delete(table).where(
            (table.c.last_seen_at < idle_before) | (table.c.created_at < created_before)
        )
    )


# -- API tokens -----------------------------------------------------------------------------


def create_token(conn: Connection, token: str, email: str, *, name: str | None, now: int) -> int:
    """Store an API token: only its SHA-256 and its first characters (to tell tokens apart)."""
    result = conn.execute(
        insert(schema.api_tokens).values(
            token_hash=digest(token), prefix=token[:8], email=email, name=name, created_at=now
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def token(conn: Connection, token_hash: str) -> Row | None:
    return _one(conn, _TOKEN, {"token_hash": token_hash})


def token_account(conn: Connection, token_hash: str) -> Row | None:
    """The token (``id``, ``last_used_at``, ``revoked_at``) with its account's ``email``,
    ``role`` and ``name`` (None when the account is gone), in one statement."""
    return _one(conn, _TOKEN_ACCOUNT, {"token_hash": token_hash})


def tokens(conn: Connection) -> list[Row]:
    table = schema.api_tokens
    query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
    return [dict(r) for r in conn.execute(query).mappings()]


def touch_token(conn: Connection, token_id: int, now: int) -> None:
    table = schema.api_tokens
    conn.execute(update(table).where(table.c.id == token_id).values(last_used_at=now))


def revoke_token(conn: Connection, token_id: int, now: int) -> bool:
    table = schema.api_tokens
    done = conn.execute(
        update(table)
        .where(table.c.id == token_id, table.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(done.rowcount)


# -- secrets --------------------------------------------------------------------------------


def secret(conn: Connection, name: str, generated: str) -> str:
    """The secret called ``name``; ``generated`` is stored first when there is none yet (the
    first replica to start wins, the others read its value)."""
    table = schema.app_secrets
    found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
    if found is None:
        conn.execute(insert(table).values(name=name, value=generated))
        return generated
    return str(found)


def set_secret(conn: Connection, name: str, value: str | None) -> None:
    """Store ``value`` as the secret ``name`` (replacing any), or forget it (None)."""
    table = schema.app_secrets
    conn.execute(delete(table).where(table.c.name == name))
    if value is not None:
        conn.execute(insert(table).values(name=name, value=value))


def stored_secret(conn: Connection, name: str) -> str | None:
    table = schema.app_secrets
    found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
    return None if found is None else str(found)


def secrets_named(conn: Connection, prefix: str) -> list[tuple[str, str]]:
    """(name, value) of the secrets whose name starts with ``prefix``."""
    table = schema.app_secrets
    query = select(table.c.name, table.c.value).where(table.c.name.startswith(prefix))
    return [(r.name, r.value) for r in conn.execute(query)]


def admins_who_can_sign_in(conn: Connection, admin_emails: Iterable[str] = ()) -> int:
    """Accounts with a password that are admins (by role, or named in ADMIN_EMAILS)."""
    table = schema.accounts
    admin = table.c.role == "admin"
    emails = list(admin_emails)
    if emails:
        admin = or_(admin, table.c.email.in_(emails))
    query = select(func.count()).select_from(table).where(admin, table.c.password_hash.is_not(None))
    return int(conn.execute(query).scalar_one())


# -- sign-in attempts ------------------------------------------------------------------------


def count_attempt(conn: Connection, key: str, window_start: int, step: int = 1) -> int:
    """Add ``step`` to ``key``'s attempts in the window and return the new count, in one
    statement: parallel sign-ins (other workers, other replicas) each get a different count."""
    t = schema.login_attempts
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(t)
        .values(throttle_key=key, window_start=window_start, attempts=step)
        .on_conflict_do_update(
            index_elements=["throttle_key", "window_start"],
            set_={"attempts": t.c.attempts + step},
        )
        .returning(t.c.attempts)
    )
    return int(conn.execute(statement).scalar_one())


def attempts(conn: Connection, key: str, window_start: int) -> int:
    t = schema.login_attempts
    query = select(t.c.attempts).where(t.c.throttle_key == key, t.c.window_start == window_start)
    return int(conn.execute(query).scalar() or 0)


def forget_attempts(conn: Connection, before: int) -> None:
    t = schema.login_attempts
    conn.execute(delete(t).where(t.c.window_start < before))

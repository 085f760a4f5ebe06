"""SQL of people: the owners admins give keys on the People page, and the audit log of every
change. Every function runs on a connection inside :meth:`Store.transaction`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from . import schema
from .writes import bump_version


def key_owners(conn: Connection) -> dict[str, dict[str, Any]]:
    table = schema.key_owners
    return {r["key_id"]: dict(r) for r in conn.execute(select(table)).mappings()}


def set_owner(
    conn: Connection,
    key_ids: Iterable[str],
    person: str,
    email: str | None,
    *,
    actor: str,
    now: int,
) -> None:
    bump_version(conn)  # names change: so do cached results
    table = schema.key_owners
    keys = list(key_ids)
    conn.execute(delete(table).where(table.c.key_id.in_(keys)))
    conn.execute(
        insert(table),
        [
            {"key_id": k, "person": person, "email": email, "changed_by": actor, "changed_at": now}
            for k in keys
        ],
    )


PAGE, OIDC = "page", "oidc"


def person_teams(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(schema.person_teams)).mappings()]


def set_person_team(
    conn: Connection, who: str, team: str | None, *, source: str, actor: str, now: int
) -> bool:
    """A person's team (None: none said here any more); whether anything changed."""
    table = schema.person_teams
    where = (table.c.who == who) & (table.c.source == source)
    before = conn.execute(select(table.c.team).where(where)).scalar()
    if before == team:
        return False
    bump_version(conn)  # teams change: so do cached results
    conn.execute(delete(table).where(where))
    if team:
        conn.execute(
            insert(table).values(
                who=who, source=source, team=team, changed_by=actor, changed_at=now
            )
        )
    return True


def record(conn: Connection, actor: str, action: str, detail: str, now: int) -> None:
    conn.execute(insert(schema.audit_log).values(at=now, actor=actor, action=action, detail=detail))


def recent_changes(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    table = schema.audit_log
    query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]

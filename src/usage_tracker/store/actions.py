"""SQL of actions: each recorded once (before anything is written to a provider), decided,
claimed by one process at a time, its previous state stored before each write, and finished.
Every function runs on a connection inside :meth:`Store.transaction`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import schema

PROPOSED, APPROVED, DONE, FAILED = "proposed", "approved", "done", "failed"
DISMISSED, RESUMING, RESUMED = "dismissed", "resuming", "resumed"
PENDING = (APPROVED, RESUMING)
"""The states a process acts on: to be done, to be undone."""


def record(conn: Connection, action: dict[str, Any], now: int) -> int | None:
    """Store ``action`` unless one with the same (connection, rule, subject, period) is stored
    already; the new id, or None (it was recorded before: here, on another replica, or before a
    restart)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(schema.actions)
        .values(
            created_at=now,
            attempts=0,
            next_attempt_at=now,
            claimed_until=0,
            **{**action, "targets": json.dumps(action["targets"])},
        )
        .on_conflict_do_nothing(index_elements=["connection", "rule", "subject", "period"])
        .returning(schema.actions.c.id)
    )
    found = conn.execute(statement).scalar()
    return None if found is None else int(found)


def _row(row: Any) -> dict[str, Any]:
    found = dict(row)
    found["targets"] = json.loads(found["targets"])
    found["previous"] = json.loads(found["previous"]) if found["previous"] else {}
    return found


def get(conn: Connection, action_id: int) -> dict[str, Any] | None:
    table = schema.actions
    row = conn.execute(select(table).where(table.c.id == action_id)).mappings().first()
    return None if row is None else _row(row)


def listing(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest actions first."""
    table = schema.actions
    query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return [_row(r) for r in conn.execute(query).mappings()]


def due(conn: Connection, now: int) -> list[int]:
    """Ids of the actions to be done or undone now that no process holds."""
    table = schema.actions
    query = (
        select(table.c.id)
        .where(
            table.c.state.in_(PENDING),
            table.c.next_attempt_at <= now,
            table.c.claimed_until < now,
        )
        .order_by(table.c.next_attempt_at, table.c.id)
    )
    return [int(r[0]) for r in conn.execute(query).all()]


def claim(conn: Connection, action_id: int, now: int, hold_seconds: int) -> bool:
    """Take a pending action for ``hold_seconds``; False when another process has it."""
    table = schema.actions
    result = conn.execute(
        update(table)
        .where(
            table.c.id == action_id,
            table.c.state.in_(PENDING),
            table.c.claimed_until < now,
        )
        .values(claimed_until=now + hold_seconds)
    )
    return result.rowcount == 1


def save_previous(conn: Connection, action_id: int, previous: dict[str, Any]) -> None:
    """What each target was before, and which were changed: stored before (and after) each
    write, so that a retry never reads a changed target as its previous state."""
    table = schema.actions
    conn.execute(update(table).where(table.c.id == action_id).values(previous=json.dumps(previous)))


def finish(
    conn: Connection,
    action_id: int,
    now: int,
    *,
    state: str,
    error: str | None,
    retry_at: int | None = None,
) -> None:
    """Record one attempt: ``state`` reached (with ``error`` saying what was left undone), or,
    with ``retry_at``, failed and to be tried again then."""
    table = schema.actions
    values: dict[str, Any] = {"claimed_until": 0, "last_error": error}
    if retry_at is not None:
        values |= {"attempts": table.c.attempts + 1, "next_attempt_at": retry_at}
    else:
        values |= {"state": state, "attempts": table.c.attempts + 1}
        if state == DONE:
            values["done_at"] = now
        if state == RESUMED:
            values["resumed_at"] = now
    conn.execute(update(table).where(table.c.id == action_id).values(**values))


def decide(conn: Connection, action_id: int, now: int, *, actor: str, approve: bool) -> bool:
    """Approve (to be done now) or dismiss a proposal; False when it is not a proposal (any
    more: another admin decided first)."""
    table = schema.actions
    result = conn.execute(
        update(table)
        .where(table.c.id == action_id, table.c.state == PROPOSED)
        .values(
            state=APPROVED if approve else DISMISSED,
            decided_by=actor,
            decided_at=now,
            next_attempt_at=now,
            attempts=0,
        )
    )
    return result.rowcount == 1


def request_resume(conn: Connection, action_id: int, now: int, *, actor: str) -> bool:
    """Ask for an action's change to be undone (done, or failed after changing something);
    False when there is nothing to undo."""
    table = schema.actions
    result = conn.execute(
        update(table)
        .where(
            table.c.id == action_id,
            table.c.state.in_((DONE, FAILED)),
            table.c.previous.is_not(None),
        )
        .values(
            state=RESUMING,
            resumed_by=actor,
            next_attempt_at=now,
            attempts=0,
            last_error=None,
        )
    )
    return result.rowcount == 1


def counts(conn: Connection) -> dict[str, int]:
    """How many actions are in each state."""
    table = schema.actions
    query = select(table.c.state, func.count()).group_by(table.c.state)
    return {str(r[0]): int(r[1]) for r in conn.execute(query).all()}

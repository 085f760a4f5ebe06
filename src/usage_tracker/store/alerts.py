"""SQL of alerts: each firing recorded once (before anything is sent), its deliveries, their
claims, retries and outcomes. Every function runs on a connection inside
:meth:`Store.transaction`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import schema

PENDING, SENT, FAILED = "pending", "sent", "failed"


def record(
    conn: Connection, firing: dict[str, Any], deliveries: Sequence[dict[str, Any]], now: int
) -> int | None:
    """Store ``firing`` and its ``deliveries`` (pending, due now) unless an alert with the same
    dedupe key is stored already; the new alert's id, or None when it had fired before (here, on
    another replica, or before a restart)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(schema.alerts_sent)
        .values(org="", fired_at=now, **firing)
        .on_conflict_do_nothing(index_elements=["org", "dedupe_key"])
        .returning(schema.alerts_sent.c.id)
    )
    alert_id = conn.execute(statement).scalar()
    if alert_id is None:
        return None
    add_deliveries(conn, int(alert_id), deliveries, now)
    return int(alert_id)


def add_deliveries(
    conn: Connection, alert_id: int, deliveries: Sequence[dict[str, Any]], now: int
) -> int:
    """Pending deliveries of an alert, due now, except to a channel (and recipient) it has one
    for already (another replica added it first); how many were added."""
    if not deliveries:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(schema.alert_deliveries)
        .values(
            [
                {
                    "alert_id": alert_id,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "claimed_until": 0,
                    **d,
                }
                for d in deliveries
            ]
        )
        .on_conflict_do_nothing(index_elements=["alert_id", "channel", "recipient"])
    )
    return int(conn.execute(statement).rowcount or 0)


def never_delivered(conn: Connection, dedupe_keys: Sequence[str]) -> dict[str, int]:
    """Of the alerts with these keys, those recorded with no channel at all and not superseded:
    key → id."""
    if not dedupe_keys:
        return {}
    a, d = schema.alerts_sent, schema.alert_deliveries
    query = select(a.c.dedupe_key, a.c.id).where(
        a.c.org == "",
        a.c.dedupe_key.in_(list(dedupe_keys)),
        a.c.superseded.is_(False),
        ~select(d.c.id).where(d.c.alert_id == a.c.id).exists(),
    )
    return {str(r.dedupe_key): int(r.id) for r in conn.execute(query)}


def due(conn: Connection, now: int, limit: int = 50) -> list[dict[str, Any]]:
    """Pending deliveries whose time has come and that no process is sending, with their alert."""
    d, a = schema.alert_deliveries, schema.alerts_sent
    query = (
        select(d, a.c.title, a.c.message, a.c.payload, a.c.kind, a.c.dedupe_key)
        .join(a, a.c.id == d.c.alert_id)
        .where(d.c.status == PENDING, d.c.next_attempt_at <= now, d.c.claimed_until < now)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def claim(conn: Connection, delivery_id: int, now: int, hold_seconds: int) -> bool:
    """Take a pending delivery for ``hold_seconds``; False when another process has it."""
    d = schema.alert_deliveries
    result = conn.execute(
        update(d)
        .where(d.c.id == delivery_id, d.c.status == PENDING, d.c.claimed_until < now)
        .values(claimed_until=now + hold_seconds)
    )
    return result.rowcount == 1


def finish(
    conn: Connection,
    delivery_id: int,
    now: int,
    *,
    error: str | None,
    retry_at: int | None,
) -> None:
    """Record one attempt: sent, or failed with ``error`` and tried again at ``retry_at``
    (None: given up)."""
    d = schema.alert_deliveries
    if error is None:
        values: dict[str, Any] = {"status": SENT, "sent_at": now, "last_error": None}
    elif retry_at is None:
        values = {"status": FAILED, "last_error": error}
    else:
        values = {"last_error": error, "next_attempt_at": retry_at}
    conn.execute(
        update(d)
        .where(d.c.id == delivery_id)
        .values(attempts=d.c.attempts + 1, claimed_until=0, **values)
    )


def recent(conn: Connection, since: int, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts fired since ``since``, newest first, each with its deliveries."""
    a, d = schema.alerts_sent, schema.alert_deliveries
    alerts = [
        dict(r)
        for r in conn.execute(
            select(a).where(a.c.fired_at >= since).order_by(a.c.id.desc()).limit(limit)
        ).mappings()
    ]
    by_id = {alert["id"]: alert for alert in alerts}
    for alert in alerts:
        alert["deliveries"] = []
    if by_id:
        rows = conn.execute(
            select(d).where(d.c.alert_id.in_(list(by_id))).order_by(d.c.id)
        ).mappings()
        for row in rows:
            by_id[row["alert_id"]]["deliveries"].append(dict(row))
    return alerts


def delivery_counts(conn: Connection, since: int) -> dict[str, int]:
    """Deliveries per status (pending, sent, failed); ``retrying``: pending ones that failed at
    least once; ``failed_recently``: given up on, of alerts fired since ``since``."""
    d = schema.alert_deliveries
    counts = {PENDING: 0, SENT: 0, FAILED: 0}
    query = select(d.c.status, func.count().label("n")).group_by(d.c.status)
    for row in conn.execute(query).mappings():
        counts[str(row["status"])] = int(row["n"])
    retrying = conn.execute(
        select(func.count()).where(and_(d.c.status == PENDING, d.c.attempts > 0))
    ).scalar()
    counts["retrying"] = int(retrying or 0)
    a = schema.alerts_sent
    recently = conn.execute(
        select(func.count())
        .select_from(d.join(a, a.c.id == d.c.alert_id))
        .where(d.c.status == FAILED, a.c.fired_at >= since)
    ).scalar()
    counts["failed_recently"] = int(recently or 0)
    return counts


def troubled(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """Deliveries that are failing (retrying) or gave up, newest first, with their alert's title."""
    d, a = schema.alert_deliveries, schema.alerts_sent
    query = (
        select(d, a.c.title, a.c.fired_at)
        .join(a, a.c.id == d.c.alert_id)
        .where(or_(d.c.status == FAILED, and_(d.c.status == PENDING, d.c.attempts > 0)))
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# -- what admins set on the Alerts page ------------------------------------------------------


RULES = "rules"
"""The alert setting that holds the rules' text."""
CHANNEL = "channel:"
"""The prefix of each alert setting that holds a channel's URL (then the URL's SHA-256)."""


def settings(conn: Connection) -> dict[str, str]:
    """name → value of every stored alert setting (``rules``, ``channel:…``)."""
    table = schema.alert_settings
    return {str(r.name): str(r.value) for r in conn.execute(select(table.c.name, table.c.value))}


def set_setting(conn: Connection, name: str, value: str | None, *, actor: str, now: int) -> bool:
    """Store ``value`` under ``name`` (None removes it); whether anything was there before."""
    table = schema.alert_settings
    existed = conn.execute(delete(table).where(table.c.name == name)).rowcount
    if value is not None:
        conn.execute(insert(table).values(name=name, value=value, changed_by=actor, changed_at=now))
    return bool(existed)

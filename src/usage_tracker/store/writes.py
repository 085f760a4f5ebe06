"""Writes: whole buckets replaced in one transaction, names upserted, sync state kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from usage_tracker.providers.records import (
    DIMENSIONS,
    METRICS,
    ApiKey,
    CostResult,
    Limit,
    Project,
    UsageResult,
    User,
)

from . import bulk, folded, folding, schema

DAY = 86400
ZERO = Decimal(0)


_STORED_DIMENSIONS = tuple(schema.STORED_AS[name] for name in DIMENSIONS)
_NO_METRICS = dict.fromkeys(METRICS, 0)


def usage_row(result: UsageResult, connection: str) -> dict[str, Any]:
    """The stored row of one upstream result of ``connection``: absent dimensions as "",
    absent counters as 0."""
    values = map(schema.to_stored, result.dimensions)
    row: dict[str, Any] = dict(zip(_STORED_DIMENSIONS, values, strict=True))
    row["connection"], row["source"], row["bucket_start"] = (
        connection,
        result.source,
        result.start_time,
    )
    row.update(_NO_METRICS)
    row.update(result.metrics)
    return row


Estimator = Callable[[Mapping[str, Any], int], Decimal | None]
"""USD of a stored usage row at the list prices in force at a time; None when unpriced."""


def replace_usage(
    conn: Connection,
    source: str,
    start: int,
    end: int,
    results: Iterable[UsageResult],
    *,
    estimate: Estimator,
    connection: str = schema.DEFAULT_CONNECTION,
    defer_blocks: bool = False,
) -> int:
    """Make the stored hours of ``connection``'s ``source`` in [start, end) exactly
    ``results``, each with its estimate; refresh the folded rollups of the hours they touch
    (the folded blocks longer than six hours left to ``folding.settle_blocks`` when
    ``defer_blocks``). Call inside a transaction. Returns the rows written."""
    rows = [usage_row(r, connection) for r in results]
    return rewrite_usage(
        conn,
        source,
        start,
        end,
        rows,
        estimate=estimate,
        connection=connection,
        defer_blocks=defer_blocks,
    )


def rewrite_usage(
    conn: Connection,
    source: str,
    start: int,
    end: int,
    rows: list[dict[str, Any]],
    *,
    estimate: Estimator,
    connection: str = schema.DEFAULT_CONNECTION,
    held: bool = True,
    defer_blocks: bool = False,
) -> int:
    """:func:`replace_usage` from stored rows. ``held``: the folded rollup holds what these
    hours held before (False only while it is built again from nothing)."""
    bump_version(conn)  # first: its row lock puts concurrent writers of the rollups in line
    table = schema.usage
    mine = (table.c.connection == connection) & (table.c.source == source)
    within = (table.c.bucket_start >= start, table.c.bucket_start < end)
    before = select(table.c.bucket_start).where(mine, *within)
    if held and conn.execute(before.limit(1)).first() is not None:
        # what they held before goes
        folding.take_source_hours(conn, source, start, end, connection=connection)
    conn.execute(delete(table).where(mine, *within))
    for row in rows:
        usd = estimate(row, row["bucket_start"])
        tokens = row["input_tokens"] + row["output_tokens"]
        row["estimated_usd"], row["unpriced_tokens"] = (ZERO, tokens) if usd is None else (usd, 0)
    stored = bulk.insert_many(conn, table, rows)
    # only the columns not zero in every row (a source has a dozen of the 29 or fewer)
    summed = [m for m in folded.SUMMED if any(stored[m])]
    if summed:
        folding.add_rows(conn, stored, summed)
    lo, hi = folding.quarters(start, end)
    if defer_blocks:
        folding.defer_blocks(conn, lo, hi)
    else:
        folding.rebuild_blocks(conn, schema.usage_folded, lo, hi)
    return len(rows)


def reestimate(conn: Connection, estimate: Estimator, chunk: int = 7 * DAY) -> int:
    """Every stored usage row written again with its estimate, a week of a source at a time
    (the six-hour blocks rebuilt as they go, the rest once at the end). Returns the rows."""
    table, total = schema.usage, 0
    for built in (schema.usage_folded, schema.usage_running):  # built again below, from nothing
        conn.execute(delete(built))
    spans = select(
        table.c.connection,
        table.c.source,
        func.min(table.c.bucket_start),
        func.max(table.c.bucket_start),
    )
    for row in conn.execute(spans.group_by(table.c.connection, table.c.source)).all():
        connection, source, first, last = str(row[0]), str(row[1]), int(row[2]), int(row[3])
        for lo in range(first - first % DAY, last + 1, chunk):
            query = select(table).where(
                table.c.connection == connection,
                table.c.source == source,
                table.c.bucket_start >= lo,
                table.c.bucket_start < lo + chunk,
            )
            rows = [dict(r) for r in conn.execute(query).mappings()]
            total += rewrite_usage(
                conn,
                source,
                lo,
                lo + chunk,
                rows,
                estimate=estimate,
                connection=connection,
                held=False,
                defer_blocks=True,  # summed once, below
            )
    folding.settle_blocks(conn)
    days = conn.execute(select(func.min(schema.costs.c.day), func.max(schema.costs.c.day))).one()
    if days[0] is not None:
        folding.refold_costs(conn, int(days[0]), int(days[1]) + DAY)
    return total


def set_prices(conn: Connection, fingerprint: str) -> None:
    conn.execute(update(schema.store_state).values(prices=fingerprint))


def bump_version(conn: Connection) -> None:
    """What reports show is about to change: cached results keyed by the old version go."""
    state = schema.store_state
    conn.execute(update(state).values(data_version=state.c.data_version + 1))


def settle_blocks(conn: Connection) -> bool:
    """Sum the folded blocks that pages written with ``defer_blocks`` left; False when none
    waited (``Store.settle_blocks`` also tidies up after them)."""
    return folding.settle_blocks(conn)


def replace_costs(
    conn: Connection,
    start: int,
    end: int,
    results: Iterable[CostResult],
    *,
    connection: str = schema.DEFAULT_CONNECTION,
) -> int:
    """Make the stored cost days of ``connection`` in [start, end) exactly ``results`` (summed
    per key)."""
    bump_version(conn)
    table = schema.costs
    conn.execute(
        delete(table).where(
            table.c.connection == connection, table.c.day >= start, table.c.day < end
        )
    )
    rows: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for r in results:
        key = (r.start_time, r.project_id or "", r.line_item or "", r.api_key_id or "")
        row = rows.get(key)
        if row is None:
            rows[key] = {
                "connection": connection,
                "day": key[0],
                "project_id": key[1],
                "line_item": key[2],
                "api_key_id": key[3],
                "amount": r.amount,
                "currency": r.currency,
                "quantity": r.quantity,
                "quantity_unit": r.quantity_unit,
            }
        else:  # the same key twice in a bucket: keep both amounts
            row["amount"] += r.amount
            if r.quantity is not None:
                row["quantity"] = (row["quantity"] or 0) + r.quantity
    bulk.insert_many(conn, table, list(rows.values()))
    folding.refold_costs(conn, start - start % DAY, -(-end // DAY) * DAY)
    return len(rows)


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    bump_version(conn)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    keys = [c.name for c in table.primary_key.columns]
    changes = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes), list(rows))


def _seen(
    items: Iterable[Project | ApiKey | User], connection: str, seen_at: int
) -> list[dict[str, Any]]:
    # The records' fields are the tables' columns, plus their connection and when the row was
    # last seen upstream.
    return [{"connection": connection, **asdict(item), "last_seen_at": seen_at} for item in items]


def upsert_projects(
    conn: Connection, connection: str, items: Iterable[Project], seen_at: int
) -> None:
    _upsert(conn, schema.projects, _seen(items, connection, seen_at))


def upsert_api_keys(
    conn: Connection, connection: str, items: Iterable[ApiKey], seen_at: int
) -> None:
    _upsert(conn, schema.api_keys, _seen(items, connection, seen_at))


def upsert_users(conn: Connection, connection: str, items: Iterable[User], seen_at: int) -> None:
    _upsert(conn, schema.users, _seen(items, connection, seen_at))


def limits_failed(conn: Connection, connection: str, words: str) -> None:
    """Why ``connection``'s limits could not be read (those read before stay)."""
    table = schema.connections
    conn.execute(update(table).where(table.c.name == connection).values(limits_error=words[:200]))


def replace_limits(conn: Connection, connection: str, limits: Iterable[Limit], now: int) -> None:
    """What ``connection``'s provider reports of its limits now, in place of what it did."""
    known = schema.connections
    conn.execute(
        update(known)
        .where(known.c.name == connection)
        .values(limits_read_at=now, limits_error=None)
    )
    table = schema.limits
    conn.execute(table.delete().where(table.c.connection == connection))
    rows = [
        {
            "connection": connection,
            "kind": limit.kind,
            "project_id": limit.project_id or "",
            "ident": limit.ident,
            "amount_usd": limit.amount_usd,
            "interval": limit.interval,
            "enforcing": limit.enforcing,
            "model": limit.model,
            "figures": None if limit.figures is None else json.dumps(dict(limit.figures)),
            "read_at": now,
        }
        for limit in limits
    ]
    if rows:
        conn.execute(table.insert(), rows)
    bump_version(conn)


def add_connection(conn: Connection, name: str, provider: str, now: int) -> None:
    """Record that rows of the connection ``name`` (of ``provider``) are stored from now on;
    a connection already recorded stays as it is."""
    table = schema.connections
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(name=name, provider=provider, first_seen_at=now)
    conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]))


def _state(connection: str, source: str) -> Any:
    table = schema.sync_state
    return (table.c.connection == connection) & (table.c.source == source)


def start_sync_state(
    conn: Connection, connection: str, source: str, backfill_from: int, now: int
) -> None:
    """Create the state of ``connection``'s ``source`` on its first run, and record an
    attempt."""
    table = schema.sync_state
    exists = conn.execute(select(table.c.source).where(_state(connection, source))).first()
    if exists is None:
        conn.execute(
            insert(table).values(
                connection=connection,
                source=source,
                backfill_from=backfill_from,
                done_until=backfill_from,
                backfill_complete=False,
                last_attempt_at=now,
                runs=1,
            )
        )
    else:
        conn.execute(
            update(table)
            .where(_state(connection, source))
            .values(last_attempt_at=now, runs=table.c.runs + 1)
        )


def advance_sync_state(conn: Connection, connection: str, source: str, done_until: int) -> None:
    table = schema.sync_state
    conn.execute(
        update(table)
        .where(and_(_state(connection, source), table.c.done_until < done_until))
        .values(done_until=done_until)
    )


def finish_sync_state(
    conn: Connection,
    connection: str,
    source: str,
    now: int,
    *,
    error: str | None,
    backfill_complete: bool,
) -> None:
    table = schema.sync_state
    values: dict[str, Any] = {"last_error": error}
    if error is None:
        values["last_success_at"] = now
    if backfill_complete:
        values["backfill_complete"] = True
    conn.execute(update(table).where(_state(connection, source)).values(**values))


def mark_fresh(conn: Connection, connection: str, source: str, now: int) -> None:
    """The recent hours of ``source`` were just re-fetched: its data is current as of ``now``.
    The last full sync's error, if any, stays until the next full sync."""
    table = schema.sync_state
    conn.execute(
        update(table)
        .where(and_(_state(connection, source), table.c.last_success_at < now))
        .values(last_success_at=now)
    )


def _note_key(connection: str, source: str, kind: str, detail: str | None = None) -> Any:
    """The ``upstream_notes`` rows of ``connection``'s ``source`` and ``kind`` (of ``detail``
    only, if given)."""
    table = schema.upstream_notes
    key = (table.c.connection == connection) & (table.c.source == source) & (table.c.kind == kind)
    return key if detail is None else key & (table.c.detail == detail)


def note_upstream(
    conn: Connection, source: str, kind: str, detail: str, now: int, *, connection: str
) -> None:
    """Record (or record again, as checked at ``now``) what the API said of ``source``."""
    table = schema.upstream_notes
    key = _note_key(connection, source, kind, detail)
    if conn.execute(update(table).where(key).values(noted_at=now)).rowcount == 0:
        conn.execute(
            table.insert().values(
                connection=connection, source=source, kind=kind, detail=detail, noted_at=now
            )
        )


def forget_upstream_note(
    conn: Connection, connection: str, source: str, kind: str, detail: str | None = ""
) -> None:
    """Forget a note (every one of ``source`` and ``kind`` when ``detail`` is None)."""
    conn.execute(schema.upstream_notes.delete().where(_note_key(connection, source, kind, detail)))


TROUBLE = ("upstream", "trouble")
"""(source, kind) of the note that says what is failing at a connection's provider right now."""


def note_trouble(conn: Connection, connection: str, words: str | None, now: int) -> None:
    """What is failing at ``connection``'s provider now (None: nothing), for every process to
    see."""
    conn.execute(schema.upstream_notes.delete().where(_note_key(connection, *TROUBLE)))
    if words is not None:
        note_upstream(conn, *TROUBLE, words[:200], now, connection=connection)

"""Keeping the folded rollups (read by :mod:`.folded`) in the same transaction as the rows
they fold: a page of usage changes the six-hour blocks of its source's hours by the difference
it made (what those hours held before is taken away, what they hold now is added), and the day
blocks over them are summed again from the blocks they hold; usage's week blocks (Monday to
Monday) from its days; then the running totals of every day after the first one touched, from
the days. A first backfill defers the days, weeks and running totals to one sum at the end of
its pass (``defer_blocks``, ``settle_blocks``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Table,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    type_coerce,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from . import bulk, schema
from .folded import DAY, HOUR, MONDAY, QUARTER, SIX, SUMMED, WEEK, period_start


def take_source_hours(
    conn: Connection, source: str, start: int, end: int, *, connection: str
) -> None:
    """Take the stored hourly rows of ``connection``'s ``source`` in [start, end) away from
    the six-hour blocks (before those hours are written again)."""
    bounds = {"connection": connection, "source": source, "lo": start, "hi": end}
    for statement in _taking_statements(conn.dialect.name):
        conn.execute(statement, bounds)


@cache
def _taking_statements(dialect: str) -> list[Any]:
    # Built once: a statement this size costs more to build than to run.
    hourly, folded = schema.usage, schema.usage_folded
    block = (hourly.c.bucket_start - hourly.c.bucket_start % QUARTER).label("block")
    statements = []
    for grouping, column in schema.FOLDED.items():
        rows = (
            select(
                literal(SIX),
                block,
                literal(grouping),
                hourly.c[column],
                hourly.c.connection,
                # As stored (an estimate is scaled): no type may touch the sign.
                *(-type_coerce(func.sum(hourly.c[m]), BigInteger) for m in SUMMED),
            )
            .where(
                hourly.c.connection == bindparam("connection"),
                hourly.c.source == bindparam("source"),
                hourly.c.bucket_start >= bindparam("lo"),
                hourly.c.bucket_start < bindparam("hi"),
            )
            .group_by(block, hourly.c[column], hourly.c.connection)
        )
        statements.append(_upsert_adding(dialect, folded, [c.name for c in folded.columns], rows))
    return statements


def add_rows(conn: Connection, rows: Mapping[str, Sequence[Any]], summed: Sequence[str]) -> None:
    """Add hourly rows, as stored and given column by column, to the six-hour blocks: their
    ``summed`` columns (the others are zero in every one of them). Summed here rather than by
    the database: a page's rows are at hand, and reading them back from the hourly table cost
    more than writing them (it reads every source's rows of those hours)."""
    at = [start - start % QUARTER for start in rows["bucket_start"]]
    sums = list(zip(*(rows[m] for m in summed), strict=True))
    per_block: dict[int, Sequence[Any]] | None = None  # of a column with one value (the source)
    out: list[tuple[Any, ...]] = []
    for grouping, column in schema.FOLDED.items():
        values, connections = rows[column], rows["connection"]
        if len(set(values)) == 1 and len(set(connections)) == 1:
            if per_block is None:
                per_block = {
                    block: _sum([sums[i] for i in members])
                    for block, members in _groups(at).items()
                }
            value, connection = values[0], connections[0]
            out += [
                (SIX, block, grouping, value, connection, *total)
                for block, total in per_block.items()
            ]
            continue
        keys = zip(at, values, connections, strict=True)
        for (block, value, connection), members in _groups(keys).items():
            total = _sum([sums[i] for i in members])
            out.append((SIX, block, grouping, value, connection, *total))
    if not out:
        return
    names = ("hours", "start", "grouping", "value", "connection", *summed)
    columns = dict(zip(names, map(list, zip(*out, strict=True)), strict=True))
    bulk.execute(conn, _adding_statement(conn.dialect.name, tuple(summed)), columns)


def _groups(keys: Iterable[Any]) -> dict[Any, list[int]]:
    """Each key's positions in ``keys``."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        group = groups.get(key)
        if group is None:
            groups[key] = [i]
        else:
            group.append(i)
    return groups


def _sum(rows: list[Sequence[Any]]) -> Sequence[Any]:
    """Rows of numbers summed column by column."""
    return rows[0] if len(rows) == 1 else [sum(c) for c in zip(*rows, strict=True)]


@cache
def _adding_statement(dialect: str, summed: tuple[str, ...]) -> Any:
    """A six-hour block's row of ``summed`` columns, added to the one already there."""
    table = schema.usage_folded
    return _upsert_adding(dialect, table, [*(c.name for c in table.primary_key.columns), *summed])


def quarters(start: int, end: int) -> tuple[int, int]:
    """[start, end) widened to whole six-hour blocks."""
    return start - start % QUARTER, -(-end // QUARTER) * QUARTER


def _upsert_adding(
    dialect: str, table: Table, columns: Sequence[str], rows: Any | None = None
) -> Any:
    """INSERT into ``columns`` of ``table`` the ``rows`` of a select or, without one, a row of
    parameters named as the columns, adding them to a row already there."""
    insert_ = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    statement = (
        insert_.values({c: bindparam(c) for c in columns})
        if rows is None
        else insert_.from_select(columns, rows)
    )
    keys = [c.name for c in table.primary_key.columns]
    adding = {c: table.c[c] + statement.excluded[c] for c in columns if c not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=adding)


def rebuild_blocks(conn: Connection, table: Table, lo: int, hi: int) -> None:
    """The blocks over [lo, hi) longer than the shortest ``table`` holds, each summed from the
    blocks of the length below it (the shortest ones are current), and usage's weeks from their
    days; then the running totals from the day of ``lo`` on (:func:`run_totals`)."""
    for length, delete_, insert_ in _block_statements(table.name):
        span, offset = length * HOUR, MONDAY if length == schema.WEEK_HOURS else 0
        first = lo - (lo - offset) % span
        bounds = {"first": first, "last": first + -(-(hi - first) // span) * span}
        conn.execute(delete_, bounds)
        conn.execute(insert_, bounds)
    run_totals(conn, table, lo - lo % DAY)


RUNNING = {
    schema.usage_folded.name: schema.usage_running,
    schema.costs_folded.name: schema.costs_running,
}
"""Each folded table's running totals."""


def run_totals(conn: Connection, table: Table, base: int) -> None:
    """The running totals of ``table``'s day blocks for every day after the UTC day ``base``
    (whose own are current): that day's, plus the days since, to the day after the last day
    block. A sync's write from today on sums a day or two of every value; a first backfill
    sums a year once, at its end."""
    last = conn.execute(_last_day_statement(table.name)).scalar()
    delete_, insert_ = _running_statements(table.name)
    if conn.dialect.name == "postgresql":
        # Its planner cannot know the calendar's length: it expects enough rows to compile the
        # statement (JIT), 130 ms of a sync page's 230, for a few thousand rows.
        conn.exec_driver_sql("SET LOCAL jit = off")
    conn.execute(delete_, {"base": base})
    if last is not None and last + DAY > base:
        conn.execute(insert_, {"base": base, "last": last + DAY})


@cache
def _last_day_statement(name: str) -> Any:
    table = schema.metadata.tables[name]
    return select(func.max(table.c.start)).where(table.c.hours == 24)


@cache
def _running_statements(name: str) -> tuple[Any, Any]:
    """DELETE the running totals after the day ``base``, and INSERT them again up to the day
    ``last``, every day (a value has a row on every day after its first use: reads find a day's
    rows by equality). Each value's totals at ``base`` (none: nothing yet) count on the day
    after it, each day block on the day after its own, a zero on every day of a calendar of
    the days (what gives each value its row every day); summed per value and day, and run by a
    window. No join: a calendar joined to the day blocks by their day led PostgreSQL's planner
    to sort every day block of the table (2.2 s for a sync's page, 18 s for a year)."""
    folded, running = schema.metadata.tables[name], RUNNING[name]
    keys = ("grouping", "value", "connection")
    summed = [c.name for c in running.columns if c.name not in ("day", *keys)]
    base, last = bindparam("base", type_=BigInteger), bindparam("last", type_=BigInteger)
    first_day = select(cast(base + DAY, BigInteger).label("day")).cte("days", recursive=True)
    days = first_day.union_all(select(first_day.c.day + DAY).where(first_day.c.day < last))
    since = (folded.c.hours == 24, folded.c.start >= base)
    values = union(
        select(*(running.c[k] for k in keys)).where(running.c.day == base),
        select(*(folded.c[k] for k in keys)).where(*since),
    ).subquery("running_values")

    def stored(column: Any) -> Any:  # as stored (an amount is scaled)
        return type_coerce(column, BigInteger)

    zero = literal(0, BigInteger)
    parts = union_all(
        select(
            cast(base + DAY, BigInteger).label("day"),
            *(running.c[k] for k in keys),
            *(stored(running.c[m]) for m in summed),
        ).where(running.c.day == base),
        select(
            folded.c.start + DAY,
            *(folded.c[k] for k in keys),
            *(stored(folded.c[m]) for m in summed),
        ).where(*since),
        select(days.c.day, *(values.c[k] for k in keys), *(zero for _ in summed)).select_from(
            values.join(days, true())
        ),
    ).subquery("parts")
    by = [parts.c[k] for k in keys]
    per_day = (
        select(parts.c.day, *by, *(cast(func.sum(parts.c[m]), BigInteger).label(m) for m in summed))
        .group_by(parts.c.day, *by)
        .subquery("per_day")
    )
    by = [per_day.c[k] for k in keys]
    totals = select(
        per_day.c.day,
        *by,
        *(
            # PostgreSQL sums BIGINT as NUMERIC
            cast(
                func.sum(per_day.c[m]).over(partition_by=by, order_by=per_day.c.day), BigInteger
            ).label(m)
            for m in summed
        ),
    ).subquery("totals")
    # from a value's first use on: before it, its totals are all zero (they never fall); in the
    # order of the key: on PostgreSQL a day's rows are then on a few pages, not one page each
    # (a read of two days' 1,758 rows touched as many pages)
    used = (
        select(*totals.c)
        .where(or_(*(totals.c[m] != 0 for m in summed)))
        .order_by(totals.c.day, *(totals.c[k] for k in keys))
    )
    return (
        delete(running).where(running.c.day > base),
        insert(running).from_select(["day", *keys, *summed], used),
    )


def defer_blocks(conn: Connection, lo: int, hi: int) -> None:
    """Leave usage's blocks longer than six hours over [lo, hi), and the running totals from
    there on, to :func:`settle_blocks` (readers take the six-hour blocks there meanwhile, and
    no running totals): a first backfill sums each of them once instead of once per page."""
    state = schema.store_state
    conn.execute(
        update(state).values(
            blocks_from=case(
                (or_(state.c.blocks_from.is_(None), state.c.blocks_from > lo), lo),
                else_=state.c.blocks_from,
            ),
            blocks_until=case(
                (or_(state.c.blocks_until.is_(None), state.c.blocks_until < hi), hi),
                else_=state.c.blocks_until,
            ),
        )
    )


def deferred(conn: Connection) -> tuple[int, int] | None:
    """Where usage's longer blocks wait for :func:`settle_blocks`, if anywhere."""
    state = schema.store_state
    row = conn.execute(select(state.c.blocks_from, state.c.blocks_until)).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def settle_blocks(conn: Connection) -> bool:
    """Sum usage's deferred longer blocks again; False when none waited."""
    pending = deferred(conn)
    if pending is None:
        return False
    rebuild_blocks(conn, schema.usage_folded, *pending)
    conn.execute(update(schema.store_state).values(blocks_from=None, blocks_until=None))
    return True


@cache
def _block_statements(name: str) -> list[tuple[int, Any, Any]]:
    table = schema.metadata.tables[name]
    keys = ("hours", "start", "grouping", "value", "connection")
    summed = [c.name for c in table.columns if c.name not in keys]
    lengths = schema.BLOCK_HOURS if table is schema.usage_folded else schema.BLOCK_HOURS[1:]
    pairs = list(itertools.pairwise(lengths))
    if table is schema.usage_folded:
        pairs.append((24, schema.WEEK_HOURS))
    first, last = bindparam("first", type_=BigInteger), bindparam("last", type_=BigInteger)
    out = []
    for shorter, length in pairs:
        span = length * HOUR
        start = (
            period_start(table.c.start, WEEK)
            if length == schema.WEEK_HOURS
            else table.c.start - table.c.start % span
        ).label("start")
        query = (
            select(
                literal(length),
                start,
                table.c.grouping,
                table.c.value,
                table.c.connection,
                *(func.sum(table.c[m]) for m in summed),
            )
            .where(table.c.hours == shorter, table.c.start >= first, table.c.start < last)
            .group_by(start, table.c.grouping, table.c.value, table.c.connection)
        )
        columns = [*keys, *summed]
        out.append(
            (
                length,
                delete(table).where(
                    table.c.hours == length, table.c.start >= first, table.c.start < last
                ),
                insert(table).from_select(columns, query),
            )
        )
    return out


def refold_costs(conn: Connection, day_lo: int, day_hi: int) -> None:
    """The billed-cost blocks over the days in [day_lo, day_hi), from the costs stored."""
    costs, folded = schema.costs, schema.costs_folded
    conn.execute(
        delete(folded).where(
            folded.c.hours == 24, folded.c.start >= day_lo, folded.c.start < day_hi
        )
    )
    for grouping, column in schema.COSTS_FOLDED.items():
        query = (
            select(
                literal(24),
                costs.c.day,
                literal(grouping),
                costs.c[column],
                costs.c.connection,
                func.sum(costs.c.amount),
            )
            .where(costs.c.day >= day_lo, costs.c.day < day_hi)
            .group_by(costs.c.day, costs.c[column], costs.c.connection)
        )
        columns = ["hours", "start", "grouping", "value", "connection", "amount"]
        conn.execute(insert(folded).from_select(columns, query))
    rebuild_blocks(conn, folded, day_lo, day_hi)

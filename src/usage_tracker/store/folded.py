"""The folded rollups, read: usage and billed cost summed per grouping alone (key, user,
project, model, source; key, project, line item) over blocks of six hours and of a UTC day,
usage over weeks from Monday, and the running totals of the days (:mod:`.folding` keeps them
as rows are written).

Reads take a run of more than a few whole days as the running totals at its ends, fewer as day
blocks (six-hour ones only where the day blocks wait), a partial day at an edge as its six-hour
blocks (or its whole day less the rest, where that reads fewer), and the hours at the edges
from the hourly table (or a whole six hours less the hours it should not count, whichever
reads fewer: at most three; none after the last stored hour).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY

from usage_tracker.providers.records import METRICS

from . import schema

DAY, HOUR = 86400, 3600
WEEK = schema.WEEK_HOURS * HOUR
MONDAY = 4 * DAY
"""1970-01-01 was a Thursday: weeks start on the Mondays 4 days after it, 7 days apart."""
SUMMED = (*METRICS, *schema.ESTIMATES)
SIX = schema.BLOCK_HOURS[0]
"""The shortest blocks' length in hours."""
QUARTER = SIX * HOUR
FEW_BLOCKS = 2
"""Up to this many folded blocks are read as their rows and summed here: summing them in the
database took longer than reading them (SQLite sorts every row it groups, all of its sums with
it; PostgreSQL sums BIGINT as NUMERIC). A day block of three large connections, 850 rows:
9.9 -> 4.8 ms on SQLite, 6.4 -> 3.4 on PostgreSQL; a day and a six-hour block 11.5 -> 8.0 and
7.2 -> 5.5. From three blocks on, the database's sums were as quick or quicker."""
RUNNING_AFTER = 4
"""A range of more whole days than this reads them as the running totals at their two ends (one
statement of some 900 rows for three large connections), fewer from their day blocks (some 300
rows a day)."""
Row = dict[str, Any]
Totals = dict[tuple[Any, ...], list[Any]]


@dataclass
class Plan:
    """A range as folded blocks to add (length in hours -> starts), six-hour blocks to take
    away, and hourly ranges to add and to take away."""

    blocks: dict[int, list[int]] = field(default_factory=dict)
    less: list[int] = field(default_factory=list)
    plus: list[tuple[int, int]] = field(default_factory=list)
    minus: list[tuple[int, int]] = field(default_factory=list)


def plan(
    start: int,
    end: int,
    data_until: int,
    lengths: Sequence[int] = schema.BLOCK_HOURS,
    *,
    days_free: bool = False,
) -> Plan:
    """How to read [start, end) (whole hours) when nothing is stored from ``data_until`` on,
    from blocks of ``lengths`` (six hours, and days when 24 is one of them): its whole days,
    and at each edge its six-hour blocks and at most three hours (or a whole six hours less
    the hours it should not count, whichever reads fewer). ``days_free``: any run of whole
    days is one read (the running totals), so a partial day at an edge may be read as its
    whole day less the rest of it instead, where that rest holds fewer six-hour blocks with
    anything stored (at the end of a range that ends now: none)."""
    out = Plan()

    def hours(lo: int, hi: int) -> int:
        return max(0, min(hi, data_until) - lo) // HOUR

    def in_block(block: int, lo: int, hi: int, sign: int) -> None:
        """The hours [lo, hi) of the six-hour ``block``, added (``sign`` 1) or taken away."""
        rest = [(block, lo), (hi, block + QUARTER)]
        if hours(block, lo) + hours(hi, block + QUARTER) < hours(lo, hi):
            (out.blocks.setdefault(SIX, []) if sign > 0 else out.less).append(block)
            other = out.minus if sign > 0 else out.plus
            other += [(a, min(b, data_until)) for a, b in rest if hours(a, b)]
        elif hours(lo, hi):
            (out.plus if sign > 0 else out.minus).append((lo, min(hi, data_until)))

    def quarters(lo: int, hi: int) -> list[int]:
        """The six-hour blocks within [lo, hi) that may hold anything."""
        first = -(-lo // QUARTER) * QUARTER
        return [b for b in range(first, hi - hi % QUARTER, QUARTER) if b < data_until]

    def part(lo: int, hi: int, sign: int) -> None:
        """[lo, hi) added (``sign`` 1) or taken away (-1) as six-hour blocks and hours."""
        first, last = -(-lo // QUARTER) * QUARTER, hi - hi % QUARTER
        if first > last:  # within one six-hour block
            in_block(last, lo, hi, sign)
            return
        if lo < first:
            in_block(first - QUARTER, lo, first, sign)
        if last < hi:
            in_block(last, last, hi, sign)
        whole = quarters(first, last)
        if whole:
            (out.blocks.setdefault(SIX, []) if sign > 0 else out.less).extend(whole)

    first_day, last_day = -(-start // DAY) * DAY, end - end % DAY
    if 24 not in lengths or first_day > last_day:  # six-hour blocks only, or within a day
        part(start, end, 1)
        return out
    if start < first_day:
        if days_free and len(quarters(first_day - DAY, start)) < len(quarters(start, first_day)):
            part(first_day - DAY, start, -1)
            first_day -= DAY
        else:
            part(start, first_day, 1)
    if last_day < end:
        if days_free and len(quarters(end, last_day + DAY)) < len(quarters(last_day, end)):
            part(end, last_day + DAY, -1)
            last_day += DAY
        else:
            part(last_day, end, 1)
    if first_day < last_day:
        out.blocks[24] = list(range(first_day, last_day, DAY))
    return out


@dataclass(frozen=True)
class Stored:
    """What a read needs to know of the store first, read in one statement."""

    until: int
    """The end of the last stored hour (0 when nothing is stored)."""
    waiting: tuple[int, int] | None
    """Where the longer blocks wait for :func:`.folding.settle_blocks`, if anywhere."""
    running_until: int | None
    """The last day of usage's running totals (None: none)."""

    def quarters_only(self, start: int, end: int) -> bool:
        """Whether [start, end) overlaps blocks that wait to be summed again."""
        return self.waiting is not None and self.waiting[0] < end and start < self.waiting[1]


@cache
def _stored_statement() -> Any:
    state = schema.store_state
    last = select(func.max(schema.usage.c.bucket_start)).scalar_subquery()
    running = select(func.max(schema.usage_running.c.day)).scalar_subquery()
    return select(last, state.c.blocks_from, state.c.blocks_until, running)


@cache
def _costs_until_statement() -> Any:
    return select(func.max(schema.costs_running.c.day))


def stored(conn: Connection) -> Stored:
    """The :class:`Stored` facts of now."""
    row: Any = conn.execute(_stored_statement()).one()
    last, lo, hi, running = row
    return Stored(
        0 if last is None else int(last) + HOUR,
        None if lo is None else (int(lo), int(hi)),
        None if running is None else int(running),
    )


@dataclass(frozen=True, slots=True)
class Sums:
    """One grouping's totals as lists, not a dict a row (a summary reads, folds and prices some
    2,000 rows of 31 sums: building a dict of each, at each step, was most of its time). Each
    row is the connection its value was used in (None when several), the value, and the sums
    of :attr:`columns`' metrics. Shared by the reads of one snapshot: read, never changed."""

    columns: tuple[str, ...]
    """What each place of a row holds: ``connection``, the grouping's stored column, metrics."""
    rows: list[list[Any]]

    def only(self, metrics: Sequence[str]) -> Sums:
        """These totals with only ``metrics`` (a few of :attr:`columns`'): the rows with any of
        them not zero."""
        if tuple(metrics) == self.columns[2:]:
            return self
        places = [self.columns.index(m) for m in metrics]
        rows = []
        for row in self.rows:
            picked = [row[i] for i in places]
            if any(picked):
                rows.append([row[0], row[1], *picked])
        return Sums((*self.columns[:2], *metrics), rows)

    def dicts(self) -> list[Row]:
        """The rows as dicts keyed by :attr:`columns` (as ``queries.usage_totals`` gives)."""
        columns = self.columns
        return [dict(zip(columns, row, strict=True)) for row in self.rows]


def usage_totals(
    conn: Connection,
    start: int,
    end: int,
    metrics: Sequence[str],
    groupings: Sequence[str] = tuple(schema.FOLDED),
) -> dict[str, list[Row]]:
    """:func:`usage_sums` as dicts."""
    return {g: sums.dicts() for g, sums in usage_sums(conn, start, end, metrics, groupings).items()}


def usage_sums(
    conn: Connection,
    start: int,
    end: int,
    metrics: Sequence[str],
    groupings: Sequence[str] = tuple(schema.FOLDED),
) -> dict[str, Sums]:
    """Summed ``metrics`` in [start, end) per value of each of ``groupings``, across every
    connection, the rows in the order of their values; each row's connection is the one its
    value was used in (None when several)."""
    known = stored(conn)
    usable = (SIX,) if known.quarters_only(start, end) else schema.BLOCK_HOURS
    whole_days = (end - end % DAY - -(-start // DAY) * DAY) // DAY
    running = whole_days > RUNNING_AFTER and known.waiting is None
    how = plan(start, end, known.until, usable, days_free=running)
    totals: Totals = {}
    metrics, groupings = tuple(metrics), tuple(groupings)
    wanted = set(groupings)
    dialect = conn.dialect.name
    if running:  # the days' ends' running totals
        days = how.blocks.pop(24)
        ends = running_days(days[0], days[-1] + DAY, known.running_until)
        if ends is not None:
            query = _running_statement(dialect, "usage_running", metrics)
            bounds = {"lo": ends[0], "hi": ends[1], "groupings": list(groupings)}
            add(totals, _sums(conn, query, bounds), 3)
    # the blocks to add, and the six-hour ones to take away (the rest of a day read whole)
    for starts, sign in ((how.blocks, 1), ({SIX: how.less} if how.less else {}, -1)):
        if starts:
            lengths = tuple(sorted(starts))
            keys = ("grouping", "value", "connection")
            few = sum(map(len, starts.values())) <= FEW_BLOCKS
            query = _over_blocks(dialect, "usage_folded", keys, metrics, lengths, grouped=not few)
            rows = _sums(conn, query, {f"starts{n}": starts[n] for n in lengths})
            add(totals, (r for r in rows if r[0] in wanted), 3, sign)
    for ranges, sign in ((how.plus, 1), (how.minus, -1)):
        if ranges:
            accumulate(totals, _hours_rows(conn, groupings, metrics, ranges), sign)
    out: dict[str, list[list[Any]]] = {g: [] for g in groupings}
    last: tuple[str, str] | None = None
    for key in sorted(totals):
        values = totals[key]
        if not any(values):
            continue
        grouping, value, connection = key
        if (grouping, value) == last:  # the same value in several connections (a model)
            row = out[grouping][-1]
            row[0] = None
            row[2:] = map(operator.add, row[2:], values)
        else:
            out[grouping].append([connection, value, *values])
        last = grouping, value
    scaled = [(i + 2, kind) for i, kind in amounts(metrics)]
    for rows_ in out.values():
        for row in rows_:
            read_amounts(row, scaled)
    return {g: Sums(("connection", schema.FOLDED[g], *metrics), out[g]) for g in groupings}


# Statements built once per shape and run with parameters: building one costs more than
# running it.


@cache
def _over_blocks(
    dialect: str,
    table: str,
    keys: tuple[str, ...],
    summed: tuple[str, ...],
    lengths: tuple[int, ...],
    *,
    grouped: bool = True,
) -> Any:
    """The sums (as stored: see :func:`stored_sum`) of ``summed`` per ``keys`` (the rest of a
    block's key) over the blocks of ``table`` of ``lengths`` whose starts are the parameters
    ``starts<length>``; not ``grouped``: each block's rows as they are, for the caller to sum
    (see :data:`FEW_BLOCKS`)."""
    folded = schema.metadata.tables[table]
    which = or_(
        *(
            and_(
                folded.c.hours == length,
                folded.c.start.in_(bindparam(f"starts{length}", expanding=True)),
            )
            for length in lengths
        )
    )
    by = [folded.c[k] for k in keys]
    # every grouping: a filter on it leads SQLite to scan the table
    if not grouped:
        return select(*by, *(type_coerce(folded.c[m], BigInteger) for m in summed)).where(which)
    sums = (stored_sum(dialect, folded.c[m]) for m in summed)
    return select(*by, *sums).where(which).group_by(*by)


@cache
def _running_statement(dialect: str, table: str, summed: tuple[str, ...]) -> Any:
    """What ``summed`` (as stored: see :func:`stored_sum`) of each grouping, value and connection
    (of the parameter ``groupings``) grew by from the day ``lo`` to the day ``hi`` (days stored:
    see :func:`running_days`): the running totals on ``hi`` less those on ``lo`` (none there:
    nothing before). One statement, the rows that grew only: half the rows a driver reads of
    two (879 rows of 29 sums: 7.6 ms of psycopg's)."""
    running = schema.metadata.tables[table]
    hi, lo = running.alias("hi"), running.alias("lo")
    same = [lo.c[k] == hi.c[k] for k in ("grouping", "value", "connection")]
    grown = [
        type_coerce(hi.c[m], BigInteger) - func.coalesce(type_coerce(lo.c[m], BigInteger), 0)
        for m in summed
    ]
    return (
        select(hi.c.grouping, hi.c.value, hi.c.connection, *grown)
        .select_from(hi.outerjoin(lo, and_(lo.c.day == bindparam("lo"), *same)))
        .where(
            hi.c.day == bindparam("hi"),
            hi.c.grouping.in_(bindparam("groupings", expanding=True)),
            or_(*(g != 0 for g in grown)),
        )
    )


def running_days(lo: int, hi: int, last: int | None) -> tuple[int, int] | None:
    """The days whose running totals give the days [lo, hi), when the last stored is ``last``:
    every day after the first has a row of every value used before it (none: nothing yet) up
    to ``last``, and nothing grows after it. None: nothing to read."""
    if last is None or min(lo, last) == min(hi, last):
        return None
    return min(lo, last), min(hi, last)


FAMILIES = (("api_key", "user", "project"), ("model", "source"))
"""Groupings whose values go together in the hourly rows, summed together on SQLite: a key is of
one project and one user, so their combinations are about as many as the keys (a model's and a
source's likewise); where one is not, its rows are summed for each value all the same."""


def _hours_rows(
    conn: Connection,
    groupings: tuple[str, ...],
    metrics: tuple[str, ...],
    ranges: list[tuple[int, int]],
) -> Iterable[tuple[tuple[Any, ...], Sequence[Any]]]:
    """Pairs of (grouping, value, connection) and the sums (as stored: see :func:`stored_sum`)
    of some of the hourly rows in ``ranges`` that are of it: all of them summed per key.

    The rows are read as they are (an hour of three large connections: about 450) and summed
    here, per combination of each family's values (:data:`FAMILIES`) and connection. Summed by
    the database they took twice the time or more: SQLite sorts every row it groups, all of
    its sums with it; PostgreSQL sums BIGINT as NUMERIC (GROUPING SETS of every grouping: 5.3-7
    ms an hour or three, against 1.9-4.5)."""
    bounds = {
        f"{edge}{i}": at for i, r in enumerate(ranges) for edge, at in zip("lh", r, strict=True)
    }
    families = _families(groupings)
    columns = tuple(g for family, _alone in families for g in family)
    rows = _sums(conn, _hourly_statement(columns, metrics, len(ranges)), bounds)
    width, first = len(columns), 0
    for family, alone in families:
        end = first + len(family)
        summed: Totals = {}  # per the family's values and the connection
        accumulate(summed, (((*row[first:end], row[width]), row[width + 1 :]) for row in rows))
        first = end
        for key, sums in summed.items():
            of = key[-1]
            for grouping, value in zip(family, key, strict=False):
                yield (grouping, value, of), sums
            if alone:
                yield ("connection", of, of), sums


def _families(groupings: Sequence[str]) -> list[tuple[tuple[str, ...], bool]]:
    """The :data:`FAMILIES` among ``groupings`` (each with the groupings of it asked for), and
    which of them also gives the connection's own grouping (the last, of fewer combinations:
    every hourly row is in each family's sums once)."""
    out = [
        (tuple(g for g in family if g in groupings), False)
        for family in FAMILIES
        if any(g in groupings for g in family)
    ]
    if "connection" in groupings:
        out = [*out[:-1], (out[-1][0], True)] if out else [((), True)]
    return out


@cache
def _within_ranges(ranges: int) -> Any:
    """The hourly rows in the ranges [l<i>, h<i>) (parameters)."""
    hourly = schema.usage
    return or_(
        *(
            and_(
                hourly.c.bucket_start >= bindparam(f"l{i}"),
                hourly.c.bucket_start < bindparam(f"h{i}"),
            )
            for i in range(ranges)
        )
    )


@cache
def _hourly_statement(groupings: tuple[str, ...], metrics: tuple[str, ...], ranges: int) -> Any:
    """The hourly rows in the ranges [l<i>, h<i>): the columns of ``groupings``, the
    connection, and ``metrics`` as stored."""
    hourly = schema.usage
    by = [hourly.c[schema.FOLDED[g]] for g in groupings] + [hourly.c.connection]
    stored_ = [type_coerce(hourly.c[m], BigInteger) for m in metrics]  # as stored_sum's
    return select(*by, *stored_).where(_within_ranges(ranges))


def _sums(conn: Connection, query: Any, parameters: Mapping[str, Any]) -> list[Any]:
    """The rows of a statement of sums as the driver reads them (tuples of strings and the
    integers of :func:`stored_sum`: nothing for SQLAlchemy to convert). Made into its rows,
    the 900 rows of 31 sums of a summary's running totals took a third longer to read."""
    result = conn.execute(query, parameters)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def stored_sum(dialect: str, column: Any) -> Any:
    """SUM(``column``) as the integers stored (an amount's too: :func:`amounts` says where to
    make them Decimal, once per total). PostgreSQL sums BIGINT as NUMERIC, a Decimal per value
    to read: cast back (no sum nears 2^63, see ``schema.Scaled``)."""
    total = func.sum(column)
    if dialect == "postgresql":
        return cast(total, BigInteger)
    return type_coerce(total, BigInteger)


def amounts(metrics: Sequence[str]) -> list[tuple[int, schema.Scaled]]:
    """Where in ``metrics`` the amounts are (summed as stored units), and their type."""
    columns = schema.usage.c
    return [
        (i, kind)
        for i, m in enumerate(metrics)
        if isinstance(kind := columns[m].type, schema.Scaled)
    ]


def read_amounts(values: list[Any], amounts: list[tuple[int, schema.Scaled]]) -> list[Any]:
    """Summed ``values`` as reports read them: the ``amounts`` (:func:`amounts`) in Decimal."""
    for i, kind in amounts:
        values[i] = kind.from_units(values[i])
    return values


def add(totals: Totals, rows: Iterable[Any], width: int, sign: int = 1) -> None:
    """Add (``sign`` 1) or take away (-1) each result row's sums (after its ``width`` key
    columns: integers, see :func:`stored_sum`) to ``totals`` by key."""
    accumulate(totals, ((tuple(row[:width]), row[width:]) for row in rows), sign)


def accumulate(totals: Totals, keyed: Iterable[tuple[Any, Sequence[Any]]], sign: int = 1) -> None:
    """Add (``sign`` 1) or take away (-1) each (key, sums) pair's sums to ``totals``."""
    step = operator.add if sign == 1 else operator.sub
    for key, values in keyed:
        if values[0] is None:  # the sums of no rows at all
            continue
        current = totals.get(key)
        if current is None:
            totals[key] = list(values) if sign == 1 else [-v for v in values]
        else:
            totals[key] = list(map(step, current, values))


def period_start(at: Any, per: int) -> Any:
    """The start of the hour (``per`` HOUR), UTC day (DAY) or week from Monday (WEEK) holding
    ``at``: a timestamp or a column of them."""
    return at - (at - MONDAY) % WEEK if per == WEEK else at - at % per


def usage_days(
    conn: Connection,
    start: int,
    end: int,
    grouping: str,
    metrics: Sequence[str],
    *,
    values: Sequence[str] | Mapping[str, str] | None = None,
    per: int = DAY,
) -> list[Row]:
    """Summed ``metrics`` per (UTC day, or week from Monday when ``per`` is WEEK, or hour when
    it is HOUR; value of ``grouping``) in [start, end), optionally only of ``values``; rows have
    ``day`` (the period's start) and the grouping's stored column. Summed by the database;
    ``values`` as a mapping (value -> name) sums the values of a name together, under that
    name. Hours come from the hourly rows alone."""
    column = schema.FOLDED[grouping]
    if values is None:  # the values of the range first: then the index finds their days
        values = [r[column] for r in usage_totals(conn, start, end, metrics, [grouping])[grouping]]
    into = values if isinstance(values, Mapping) else None
    values = list(values)
    names = tuple(into.items()) if into else None
    metrics = tuple(metrics)
    known = stored(conn)
    first_day = -(-start // DAY) * DAY
    last_day = end - end % DAY
    if known.until <= end and last_day < end:  # nothing stored after the range: its last day whole
        last_day += DAY
    hours = [(start, min(end, first_day))] if start < first_day else []
    if last_day < end and last_day >= first_day:
        hours.append((last_day, end))
    totals: Totals = {}
    blocks_ = [(24, first_day, last_day)]
    if known.quarters_only(first_day, last_day):
        blocks_ = [(SIX, first_day, last_day)]
    elif per == WEEK:  # whole weeks from their blocks, the days of the weeks at the edges
        first_week = -(-(first_day - MONDAY) // WEEK) * WEEK + MONDAY
        last_week = last_day - (last_day - MONDAY) % WEEK
        if first_week < last_week:
            blocks_ = [
                (24, first_day, first_week),
                (schema.WEEK_HOURS, first_week, last_week),
                (24, last_week, last_day),
            ]
    if per == HOUR:  # hour by hour: the hourly rows themselves
        blocks_, hours = [], [(start, end)]
    shape, listed = names, {}
    if into and conn.dialect.name == "postgresql":  # names as parameters: see _per_period
        shape, listed = (), {"keys": list(into), "labels": list(into.values())}
    for hours_, lo, hi in blocks_:
        if lo < hi:
            query = _days_blocks_statement(conn.dialect.name, hours_, per, metrics, shape)
            bounds = {"grouping": grouping, "lo": lo, "hi": hi, "values": values, **listed}
            add(totals, _sums(conn, query, bounds), 2)
    for lo, hi in hours:
        bounds = {"lo": lo, "hi": hi, "values": values, **listed}
        if into and conn.dialect.name != "postgresql":  # per value, named here: see below
            query = _days_hours_statement(conn.dialect.name, column, per, metrics, None)
            rows = _sums(conn, query, bounds)
            accumulate(totals, (((row[0], into[row[1]]), row[2:]) for row in rows))
            continue
        query = _days_hours_statement(conn.dialect.name, column, per, metrics, shape)
        add(totals, _sums(conn, query, bounds), 2)
    scaled = amounts(metrics)
    return [
        {"day": int(day), column: value, **dict(zip(metrics, read_amounts(v, scaled), strict=True))}
        for (day, value), v in totals.items()
        if any(v)
    ]


@lru_cache(maxsize=64)
def _days_blocks_statement(
    dialect: str,
    hours: int,
    per: int,
    metrics: tuple[str, ...],
    names: tuple[tuple[str, str], ...] | None,
) -> Any:
    """Sums per period of ``per`` and value (or name of ``names``) of the folded blocks of
    ``hours`` in [lo, hi) of the parameter ``grouping``'s ``values``. Built once per shape (and
    set of names a chart shows again): building one costs more than running it."""
    folded = _by_value(dialect)
    within = (
        folded.c.hours == hours,
        folded.c.grouping == bindparam("grouping"),
        folded.c.start >= bindparam("lo"),
        folded.c.start < bindparam("hi"),
        folded.c.value.in_(bindparam("values", expanding=True)),
    )
    if hours * HOUR == per and names is None:  # a block per period and value: nothing to sum
        stored_ = (type_coerce(folded.c[m], BigInteger) for m in metrics)  # as stored_sum's
        return select(folded.c.start, folded.c.value, *stored_).where(*within)
    return _per_period(
        dialect, folded, "start", "value", per=per, metrics=metrics, names=names, within=within
    )


@cache
def _by_value(dialect: str) -> Any:
    """The folded rollup as read for a few values of one grouping: on SQLite through its index
    by value. Without statistics (ANALYZE, which connections already open would not see) its
    planner takes the primary key instead and reads every grouping's blocks of the range: a
    90-day chart's days of one connection took 2.7 ms that way, 0.1 ms by the index."""
    folded = schema.usage_folded
    if dialect != "sqlite":
        return folded
    indexed = text("SELECT * FROM usage_folded INDEXED BY ix_usage_folded_value")
    return indexed.columns(*folded.c).subquery("by_value")


@lru_cache(maxsize=64)
def _days_hours_statement(
    dialect: str,
    column: str,
    per: int,
    metrics: tuple[str, ...],
    names: tuple[tuple[str, str], ...] | None,
) -> Any:
    """As :func:`_days_blocks_statement`, from the hourly rows in [lo, hi) whose ``column`` is
    one of ``values``. SQLite's are read per value, for the caller to name (:func:`usage_days`):
    a CASE of the names is evaluated on every hourly row of a 1-day chart's top keys (about
    10,000), and made a statement of its own for each set of names: 4.2 ms against 1.2."""
    hourly = schema.usage
    within = (
        hourly.c.bucket_start >= bindparam("lo"),
        hourly.c.bucket_start < bindparam("hi"),
        hourly.c[column].in_(bindparam("values", expanding=True)),
    )
    return _per_period(
        dialect,
        hourly,
        "bucket_start",
        column,
        per=per,
        metrics=metrics,
        names=names,
        within=within,
    )


def _per_period(
    dialect: str,
    rows: Any,
    time: str,
    value: str,
    *,
    per: int,
    metrics: tuple[str, ...],
    names: tuple[tuple[str, str], ...] | None,
    within: Sequence[Any],
) -> Any:
    """``metrics`` of ``rows`` (``within``) summed (as :func:`stored_sum`) per period of ``per`` of
    their ``time`` and per their ``value`` (or its name in ``names``). On PostgreSQL the names
    are joined from two array parameters, ``keys`` and their ``labels`` (``names`` is then
    ``()``): one statement for any names, compiled once, and hashed where a CASE of 96 keys
    was evaluated on each of a 90-day chart's 8,000 rows (35 ms in the server, against 20 ms).
    SQLite's CASE costs it 2 ms."""
    period = period_start(rows.c[time], per)
    source = rows
    if names is None:
        name = rows.c[value]
    elif dialect == "postgresql":
        listed = func.unnest(
            bindparam("keys", type_=ARRAY(String)), bindparam("labels", type_=ARRAY(String))
        )
        named = listed.table_valued("value", "name").render_derived(name="names")
        source = rows.join(named, named.c.value == rows.c[value])
        name = named.c.name
    else:
        name = case(dict(names), value=rows.c[value])
    sums = (stored_sum(dialect, rows.c[m]) for m in metrics)
    return select(period, name, *sums).select_from(source).where(*within).group_by(period, name)


def cost_days(conn: Connection, start: int, end: int, grouping: str) -> list[Row]:
    """Billed amounts per (UTC day, value of ``grouping``) on the days in [start, end)."""
    folded, column = schema.costs_folded, schema.COSTS_FOLDED[grouping]
    query = select(folded.c.start, folded.c.value, folded.c.amount).where(
        folded.c.hours == 24,
        folded.c.grouping == grouping,
        folded.c.start >= start,
        folded.c.start < end,
    )
    return [{"day": r[0], column: r[1], "amount": r[2]} for r in conn.execute(query) if r[2]]


def cost_totals(conn: Connection, start: int, end: int) -> dict[str, list[Row]]:
    """Billed amounts on the UTC days that [start, end) touches, per value of each grouping of
    ``schema.COSTS_FOLDED``: the day blocks of a few days, the running totals at the ends of
    more."""
    first_day, last_day = start - start % DAY, -(-end // DAY) * DAY
    out: dict[str, list[Row]] = {g: [] for g in schema.COSTS_FOLDED}
    if first_day >= last_day:
        return out
    dialect = conn.dialect.name
    rows: Iterable[Any] = ()
    if last_day - first_day > RUNNING_AFTER * DAY:
        last = conn.execute(_costs_until_statement()).scalar()
        ends = running_days(first_day, last_day, last)
        if ends is not None:
            query = _running_statement(dialect, "costs_running", ("amount",))
            bounds = {"lo": ends[0], "hi": ends[1], "groupings": list(schema.COSTS_FOLDED)}
            rows = _sums(conn, query, bounds)
    else:
        keys = ("grouping", "value", "connection")
        days = list(range(first_day, last_day, DAY))
        grouped = len(days) > FEW_BLOCKS
        query = _over_blocks(dialect, "costs_folded", keys, ("amount",), (24,), grouped=grouped)
        rows = _sums(conn, query, {"starts24": days})
    units: dict[tuple[str, str], int] = {}  # a value billed in several connections: summed
    for grouping, value, _connection, amount in rows:
        units[grouping, value] = units.get((grouping, value), 0) + amount
    kind: schema.Scaled = schema.costs_folded.c.amount.type  # type: ignore[assignment]
    for (grouping, value), summed in units.items():
        if summed:
            amount = kind.from_units(summed)
            out[grouping].append({schema.COSTS_FOLDED[grouping]: value, "amount": amount})
    return out

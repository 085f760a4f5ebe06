"""Reads: usage and cost totals over any hour-aligned range, names, and sync state.

Long ranges read whole UTC days from the daily rollup and only the ragged edges from the hourly
table, so a year costs about as much as a week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, func, literal, select, union_all

from usage_tracker.upstream.contract import METRICS

from . import schema

DAY = 86400
TIME_KEYS = ("hour", "day")
GROUPABLE = (*schema.USAGE_DIMENSIONS, "source", *TIME_KEYS)

Row = dict[str, Any]


def _parts(start: int, end: int, hourly_only: bool) -> list[tuple[Table, str, int, int]]:
    """[start, end) as (table, time column, lo, hi) pieces: hourly edges around whole days."""
    first_day = start if start % DAY == 0 else start - start % DAY + DAY
    last_day = end - end % DAY
    if hourly_only or last_day <= first_day:
        return [(schema.usage, "bucket_start", start, end)]
    parts = [(schema.usage_daily, "day", first_day, last_day)]
    if start < first_day:
        parts.append((schema.usage, "bucket_start", start, first_day))
    if last_day < end:
        parts.append((schema.usage, "bucket_start", last_day, end))
    return parts


def _key_column(table: Table, time_column: str, name: str) -> ColumnElement[Any]:
    time = table.c[time_column]
    if name == "hour":
        return time.label("hour")
    if name == "day":
        return (
            (time - time % DAY).label("day") if time_column == "bucket_start" else time.label("day")
        )
    return table.c[name].label(name)


def usage_totals(
    conn: Connection,
    start: int,
    end: int,
    group_by: Sequence[str] = (),
    *,
    sources: Sequence[str] | None = None,
    where: Mapping[str, Sequence[str]] | None = None,
    metrics: Sequence[str] = METRICS,
) -> list[Row]:
    """Summed ``metrics`` in [start, end) per combination of ``group_by`` (see ``GROUPABLE``).

    ``where`` restricts stored dimensions to the given values. Rows with every metric zero are
    left out. Absent dimensions come back as ``""``.
    """
    unknown = set(group_by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"cannot group usage by {', '.join(sorted(unknown))}")
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for table, time_column, lo, hi in _parts(start, end, hourly_only="hour" in group_by):
        keys = [_key_column(table, time_column, g) for g in group_by]
        query = select(*keys, *(func.sum(table.c[m]).label(m) for m in metrics)).where(
            table.c[time_column] >= lo, table.c[time_column] < hi
        )
        if sources is not None:
            query = query.where(table.c.source.in_(list(sources)))
        for column, values in (where or {}).items():
            query = query.where(table.c[column].in_(list(values)))
        if keys:
            query = query.group_by(*keys)
        _accumulate(totals, conn.execute(query), len(keys), metrics)
    return _rows(group_by, metrics, totals)


def _accumulate(
    totals: dict[tuple[Any, ...], list[Any]],
    rows: Iterable[Any],
    width: int,
    metrics: Sequence[str],
) -> None:
    """Add each result row's sums (after its ``width`` key columns) to ``totals`` by key."""
    zero = [Decimal(0) if m == "estimated_usd" else 0 for m in metrics]
    exact = [m == "estimated_usd" for m in metrics]
    for row in rows:
        key, values = tuple(row[:width]), row[width:]
        current = totals.setdefault(key, list(zero))
        for i, value in enumerate(values):
            if value:
                # PostgreSQL sums integers as NUMERIC; the estimate is a Decimal already.
                current[i] += value if exact[i] else int(value)


def _rows(
    keys: Sequence[str], metrics: Sequence[str], totals: dict[tuple[Any, ...], list[Any]]
) -> list[Row]:
    return [
        {**dict(zip(keys, key, strict=True)), **dict(zip(metrics, values, strict=True))}
        for key, values in sorted(totals.items(), key=lambda kv: tuple(str(k) for k in kv[0]))
        if any(values)
    ]


def months_between(start: int, end: int) -> list[tuple[int, int]]:
    """The calendar months (UTC) that [start, end) touches, as [first day, next month's)."""
    months = []
    at = _month_start(start)
    while (lo := int(at.timestamp())) < end and at.year < dt.MAXYEAR:
        at = at.replace(year=at.year + at.month // 12, month=at.month % 12 + 1)
        months.append((lo, int(at.timestamp())))
    return months


LAST_MONTH = int(dt.datetime(dt.MAXYEAR, 12, 1, tzinfo=dt.UTC).timestamp())


def _month_start(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(day=1, hour=0, minute=0, second=0)


def whole_months(first_day: int, last_day: int) -> tuple[int, int] | None:
    """The calendar months wholly inside [first_day, last_day), as one span; None if none."""
    first = _month_start(first_day)
    if int(first.timestamp()) < first_day:
        if first.year == dt.MAXYEAR and first.month == 12:
            return None
        first = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    last = min(last_day, LAST_MONTH)  # beyond it, days (datetime ends with the year 9999)
    lo, hi = int(first.timestamp()), int(_month_start(last).timestamp())
    return (lo, hi) if lo < hi else None


def _spans(start: int, end: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """[start, end) as (hours, days): the ragged hours at its edges, and its whole UTC days."""
    first_day = -(-start // DAY) * DAY
    last_day = end - end % DAY
    if last_day <= first_day:
        return [(start, end)], []
    hours = [(lo, hi) for lo, hi in ((start, first_day), (last_day, end)) if lo < hi]
    return hours, [(first_day, last_day)]


def _sums(table: Table, metrics: Sequence[str]) -> list[Any]:
    return [func.sum(table.c[m]).label(m) for m in metrics]


def folded_totals(
    conn: Connection,
    start: int,
    end: int,
    metrics: Sequence[str],
    groupings: Sequence[str] = tuple(schema.FOLDED),
) -> dict[str, list[Row]]:
    """Summed ``metrics`` in [start, end) per value of each folded grouping (see
    ``schema.FOLDED``): whole months and days from ``usage_folded``, the edges' hours from
    ``usage``. Each grouping's rows are keyed by its stored column, as :func:`usage_totals`'s."""
    folded, hourly = schema.usage_folded, schema.usage
    hours, days = _spans(start, end)
    queries: list[Select[Any]] = []
    for first_day, last_day in days:
        pieces = [("day", first_day, last_day)]
        months = whole_months(first_day, last_day)
        if months is not None:
            lo, hi = months
            pieces = [("month", lo, hi), ("day", first_day, lo), ("day", hi, last_day)]
        for period, lo, hi in pieces:
            if lo < hi:
                queries.append(
                    select(folded.c.grouping, folded.c.value, *_sums(folded, metrics))
                    .where(
                        folded.c.period == period,
                        folded.c.grouping.in_(list(groupings)),
                        folded.c.start >= lo,
                        folded.c.start < hi,
                    )
                    .group_by(folded.c.grouping, folded.c.value)
                )
    for lo, hi in hours:
        in_range = (hourly.c.bucket_start >= lo, hourly.c.bucket_start < hi)
        per_grouping = [
            select(
                literal(grouping).label("grouping"),
                hourly.c[column].label("value"),
                *_sums(hourly, metrics),
            )
            .where(*in_range)
            .group_by(hourly.c[column])
            for grouping, column in schema.FOLDED.items()
            if grouping in groupings
        ]
        queries.append(union_all(*per_grouping))  # type: ignore[arg-type]
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for query in queries:
        _accumulate(totals, conn.execute(query), 2, metrics)
    out: dict[str, list[Row]] = {grouping: [] for grouping in groupings}
    for row in _rows(("grouping", "value"), metrics, totals):
        grouping, value = row.pop("grouping"), row.pop("value")
        out[grouping].append({schema.FOLDED[grouping]: value, **row})
    return out


def folded_days(
    conn: Connection,
    start: int,
    end: int,
    grouping: str,
    metrics: Sequence[str],
    *,
    values: Sequence[str] | None = None,
) -> list[Row]:
    """Summed ``metrics`` per (UTC day, value of the folded ``grouping``) in [start, end),
    optionally only of ``values``; rows have ``day`` and the grouping's stored column."""
    folded, hourly = schema.usage_folded, schema.usage
    column = schema.FOLDED[grouping]
    hours, days = _spans(start, end)
    queries: list[Select[Any]] = []
    for lo, hi in days:
        query = select(folded.c.start, folded.c.value, *_sums(folded, metrics)).where(
            folded.c.period == "day",
            folded.c.grouping == grouping,
            folded.c.start >= lo,
            folded.c.start < hi,
        )
        if values is not None:
            query = query.where(folded.c.value.in_(list(values)))
        queries.append(query.group_by(folded.c.start, folded.c.value))
    day = hourly.c.bucket_start - hourly.c.bucket_start % DAY
    for lo, hi in hours:
        query = select(day, hourly.c[column], *_sums(hourly, metrics)).where(
            hourly.c.bucket_start >= lo, hourly.c.bucket_start < hi
        )
        if values is not None:
            query = query.where(hourly.c[column].in_(list(values)))
        queries.append(query.group_by(day, hourly.c[column]))
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for query in queries:
        _accumulate(totals, conn.execute(query), 2, metrics)
    return _rows(("day", column), metrics, totals)


def data_version(conn: Connection) -> tuple[int, str]:
    """(data version, the prices the stored estimates were made with)."""
    state = schema.store_state
    row = conn.execute(select(state.c.data_version, state.c.prices)).one()
    return int(row[0]), str(row[1])


def cost_totals(conn: Connection, start: int, end: int, group_by: Sequence[str] = ()) -> list[Row]:
    """Billed amounts in [start, end) (whole days) per ``group_by`` among project_id, line_item,
    api_key_id and day."""
    table = schema.costs
    keys = [table.c[g].label(g) for g in group_by]
    query = select(*keys, func.sum(table.c.amount).label("amount")).where(
        table.c.day >= start, table.c.day < end
    )
    if keys:
        query = query.group_by(*keys)
    return [dict(row._mapping) for row in conn.execute(query)]


def table_rows(conn: Connection, table: Table) -> list[Row]:
    return [dict(row._mapping) for row in conn.execute(select(table))]


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

"""Reads: usage and cost totals over any hour-aligned range, names, and sync state.

Long ranges read whole UTC days from the daily rollup and only the ragged edges from the hourly
table, so a year costs about as much as a week.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, select

from usage_tracker.providers.records import METRICS

from . import folded, schema

DAY = 86400
TIME_KEYS = ("hour", "day")
GROUPABLE = ("connection", *schema.USAGE_DIMENSIONS, "source", *TIME_KEYS)

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
        folded.add(totals, conn.execute(query), len(keys), metrics)
    return _rows(group_by, metrics, totals)


def _rows(
    keys: Sequence[str], metrics: Sequence[str], totals: dict[tuple[Any, ...], list[Any]]
) -> list[Row]:
    return [
        {**dict(zip(keys, key, strict=True)), **dict(zip(metrics, values, strict=True))}
        for key, values in sorted(totals.items(), key=lambda kv: tuple(str(k) for k in kv[0]))
        if any(values)
    ]


_DATA_VERSION = select(schema.store_state.c.data_version, schema.store_state.c.prices)


def data_version(conn: Connection) -> tuple[int, str]:
    """(data version, the prices the stored estimates were made with)."""
    row = conn.execute(_DATA_VERSION).one()
    return int(row[0]), str(row[1])


def cost_totals(
    conn: Connection,
    start: int,
    end: int,
    group_by: Sequence[str] = (),
    *,
    where: Mapping[str, Sequence[str]] | None = None,
) -> list[Row]:
    """Billed amounts in [start, end) (whole days) per ``group_by`` among connection,
    project_id, line_item, api_key_id and day; ``where`` restricts those columns to values."""
    table = schema.costs
    keys = [table.c[g].label(g) for g in group_by]
    query = select(*keys, func.sum(table.c.amount).label("amount")).where(
        table.c.day >= start, table.c.day < end
    )
    for column, values in (where or {}).items():
        query = query.where(table.c[column].in_(list(values)))
    if keys:
        query = query.group_by(*keys)
    return [dict(row._mapping) for row in conn.execute(query)]


def table_rows(conn: Connection, table: Table) -> list[Row]:
    return [dict(row._mapping) for row in conn.execute(select(table))]


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

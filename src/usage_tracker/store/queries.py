"""Reads: usage and cost totals over any hour-aligned range, names, and sync state.

Usage is summed from the hourly rows by the database (a month of a source by key and model,
about 43,000 rows: under 100 ms); the summary's totals come from the folded blocks instead
(``folded``).
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


def _key_column(name: str) -> ColumnElement[Any]:
    time = schema.usage.c.bucket_start
    if name == "hour":
        return time.label("hour")
    if name == "day":
        return (time - time % DAY).label("day")
    return schema.usage.c[name].label(name)


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
    table = schema.usage
    keys = [_key_column(g) for g in group_by]
    sums = (folded.stored_sum(conn.dialect.name, table.c[m]).label(m) for m in metrics)
    query = select(*keys, *sums).where(table.c.bucket_start >= start, table.c.bucket_start < end)
    if sources is not None:
        query = query.where(table.c.source.in_(list(sources)))
    for column, values in (where or {}).items():
        query = query.where(table.c[column].in_(list(values)))
    if keys:
        query = query.group_by(*keys)
    folded.add(totals, conn.execute(query), len(keys))
    return _rows(group_by, metrics, totals)


def _rows(
    keys: Sequence[str], metrics: Sequence[str], totals: dict[tuple[Any, ...], list[Any]]
) -> list[Row]:
    amounts = folded.amounts(metrics)
    return [
        {
            **dict(zip(keys, key, strict=True)),
            **dict(zip(metrics, folded.read_amounts(values, amounts), strict=True)),
        }
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

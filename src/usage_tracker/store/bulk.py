"""Many rows in one statement through the driver's executemany. For the sync's pages of
thousands of rows, SQLAlchemy's processing of each row's parameters cost more than the
database's work: here each column's values go through its type once, column by column, and the
driver gets plain tuples (or mappings, for drivers with named parameters)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Columns = dict[str, list[Any]]
"""Rows column by column: each column's name -> its values, row by row, as stored."""


def stored(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> Columns:
    """``rows`` (every column of ``table``) column by column, each value as its column's type
    stores it (a scaled amount becomes its integer), as SQLAlchemy would bind it."""
    out: Columns = {}
    for column in table.columns:
        values = list(map(operator.itemgetter(column.name), rows))
        process = column.type.bind_processor(conn.dialect)
        out[column.name] = values if process is None else list(map(process, values))
    return out


def execute(
    conn: Connection, statement: ClauseElement, columns: Mapping[str, Sequence[Any]]
) -> None:
    """Run ``statement`` (whose parameters are named as ``columns``'s keys) once per row of
    ``columns``, whose values are as stored."""
    compiled = cast(SQLCompiler, statement.compile(dialect=conn.dialect))
    names = compiled.positiontup or list(columns)
    values: list[Any] = list(zip(*(columns[name] for name in names), strict=True))
    if compiled.positiontup is None:  # named parameters (psycopg)
        values = [dict(zip(names, value, strict=True)) for value in values]
    if values:
        conn.exec_driver_sql(str(compiled), values)


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> Columns:
    """Insert ``rows`` (every column of ``table``); returns them column by column, as stored."""
    columns = stored(conn, table, rows)
    execute(conn, insert(table), columns)
    return columns

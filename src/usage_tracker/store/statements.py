"""SQL of closed statements: kept once (the first process to close a month wins), read back
unchanged. Every function runs on a connection inside :meth:`Store.transaction`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from . import schema


def keep(conn: Connection, row: dict[str, Any]) -> None:
    """Store a closed month's statement unless one is stored already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(schema.statements)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["month"])
    )


def closed(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every closed month's stored statement: month → its row."""
    table = schema.statements
    return {str(r["month"]): dict(r) for r in conn.execute(select(table)).mappings()}

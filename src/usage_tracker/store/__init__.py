"""The local database: the only code that runs SQL. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from . import queries, schema, writes
from .db import connect, migrate, sync_lock
from .errors import StoreUnavailableError, translated
from .queries import GROUPABLE, Row


class Store:
    """A migrated database. Reads open a short connection each; writes go through
    :meth:`transaction` with the functions of :mod:`.writes`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` and apply any pending migration."""
        engine = connect(url)
        with translated():
            migrate(engine)
        return cls(engine)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; a database failure is raised as StoreUnavailableError."""
        with translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def sync_lock(self) -> Iterator[bool]:
        """True while this process holds the sync lock; False when another one does."""
        with translated(), sync_lock(self.engine) as held:
            yield held

    def secret(self, name: str, generated: str) -> str:
        """The stored secret ``name``, storing ``generated`` when there is none yet; two
        processes starting at once agree on the first one stored."""
        from sqlalchemy.exc import IntegrityError

        from . import accounts

        for _ in range(2):
            try:
                with self.transaction() as conn:
                    return accounts.secret(conn, name, generated)
            except IntegrityError:
                continue  # another process stored it first: read theirs
        raise StoreUnavailableError(f"The secret {name} could not be stored; try again.")

    def ping(self) -> None:
        with self._reading() as conn:
            conn.exec_driver_sql("SELECT 1")

    # -- reads ------------------------------------------------------------------------------

    def usage_totals(
        self,
        start: int,
        end: int,
        group_by: Sequence[str] = (),
        *,
        sources: Sequence[str] | None = None,
        where: Mapping[str, Sequence[str]] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Row]:
        with self._reading() as conn:
            return queries.usage_totals(
                conn,
                start,
                end,
                group_by,
                sources=sources,
                where=where,
                **({"metrics": metrics} if metrics is not None else {}),
            )

    def cost_totals(self, start: int, end: int, group_by: Sequence[str] = ()) -> list[Row]:
        with self._reading() as conn:
            return queries.cost_totals(conn, start, end, group_by)

    def api_keys(self) -> list[Row]:
        return self._all(schema.api_keys)

    def users(self) -> list[Row]:
        return self._all(schema.users)

    def projects(self) -> list[Row]:
        return self._all(schema.projects)

    def key_owners(self) -> dict[str, Row]:
        from . import people

        with self._reading() as conn:
            return people.key_owners(conn)

    def sync_states(self) -> list[Row]:
        return self._all(schema.sync_state)

    def sync_state(self, source: str) -> Row | None:
        return next((s for s in self.sync_states() if s["source"] == source), None)

    def row_count(self, table: str) -> int:
        with self._reading() as conn:
            return queries.count_rows(conn, schema.metadata.tables[table])

    def _all(self, table: Any) -> list[Row]:
        with self._reading() as conn:
            return queries.table_rows(conn, table)


__all__ = ["GROUPABLE", "Row", "Store", "StoreUnavailableError", "schema", "writes"]

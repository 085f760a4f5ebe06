"""The local database: the only code that runs SQL. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from usage_tracker.providers.prices import Prices

from . import db, folded, queries, schema, writes
from .db import connect, migrate, sync_lock
from .errors import StoreUnavailableError, translated
from .queries import GROUPABLE, Row

log = logging.getLogger(__name__)


class Store:
    """A migrated database. Reads open a short connection each; writes go through
    :meth:`transaction` with the functions of :mod:`.writes`. Every usage row is stored with
    its estimate at ``prices``."""

    def __init__(self, engine: Engine, prices: Prices | None = None) -> None:
        self.engine = engine
        self.prices = prices or Prices()

    @classmethod
    def open(cls, url: str, prices: Prices | None = None) -> Store:
        """Connect to ``url``, apply any pending migration, and make the stored estimates again
        if they were made with other prices than ``prices`` (the library's alone if None)."""
        engine = connect(url)
        with translated():
            migrate(engine)
        store = cls(engine, prices)
        store.reestimate()
        return store

    def reestimate(self) -> bool:
        """Estimate every stored usage row again (and rebuild the rollups) when the stored
        estimates were made with other prices; True if it did. Two processes starting at once
        do it once: the second finds it done."""
        fingerprint = self.prices.fingerprint
        with self._reading() as conn:
            if queries.data_version(conn)[1] == fingerprint:
                return False
        with self.transaction() as conn:
            writes.bump_version(conn)  # a write first: the lock, then a fresh look
            if queries.data_version(conn)[1] == fingerprint:
                return False
            log.info("estimating the stored usage at %s", self.prices.as_of)
            rows = writes.reestimate(conn, self.prices.estimate)
            writes.set_prices(conn, fingerprint)
        log.info("%d usage rows estimated at %s", rows, self.prices.as_of)
        return True

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

    def settle_blocks(self) -> bool:
        """Sum the folded blocks a backfill left (``writes.settle_blocks``; False when none
        waited) and then bring PostgreSQL's statistics and visibility map of the tables it
        filled up to date (``db.after_bulk_load``). That second step only makes reads faster:
        when it fails the sync goes on, and the log says so."""
        with self.transaction() as conn:
            if not writes.settle_blocks(conn):
                return False
        try:
            with self.autocommit() as conn:
                db.after_bulk_load(conn)
        except StoreUnavailableError as e:
            log.warning("after the backfill, the database's statistics were not refreshed: %s", e)
        return True

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement commits on its own: no BEGIN and COMMIT round
        trips around a request's few independent reads (and the odd one-statement write)."""
        with (
            translated(),
            self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """This store for one computation of several reports over the same ranges (a page's
        summary, chart and reconciliation): its reads share one connection, and each range's
        folded totals and billed costs are read once (see :class:`_Snapshot`)."""
        with translated(), self.engine.connect() as conn:
            yield _Snapshot(self, conn)

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

    def folded_totals(
        self,
        start: int,
        end: int,
        metrics: Sequence[str],
        groupings: Sequence[str] = tuple(schema.FOLDED),
    ) -> dict[str, list[Row]]:
        """Per folded grouping (``schema.FOLDED``), its rows over [start, end)."""
        read = self.folded_sums(start, end, metrics, groupings)
        return {g: sums.dicts() for g, sums in read.items()}

    def folded_sums(
        self,
        start: int,
        end: int,
        metrics: Sequence[str],
        groupings: Sequence[str] = tuple(schema.FOLDED),
    ) -> dict[str, folded.Sums]:
        """:meth:`folded_totals` as lists (``folded.Sums``: read them, never change them)."""
        with self._reading() as conn:
            return folded.usage_sums(conn, start, end, metrics, groupings)

    def folded_days(
        self,
        start: int,
        end: int,
        grouping: str,
        metrics: Sequence[str],
        *,
        values: Sequence[str] | Mapping[str, str] | None = None,
        per: int = folded.DAY,
    ) -> list[Row]:
        """Per UTC day (or week: ``per`` folded.WEEK) and value of a folded grouping (or name
        of values: ``values`` a mapping), its rows over [start, end), in no particular order."""
        with self._reading() as conn:
            return folded.usage_days(conn, start, end, grouping, metrics, values=values, per=per)

    def folded_cost_days(self, start: int, end: int, grouping: str) -> list[Row]:
        """Billed amounts per UTC day and value of a grouping of billed cost, over [start, end)."""
        with self._reading() as conn:
            return folded.cost_days(conn, start, end, grouping)

    def folded_costs(self, start: int, end: int) -> dict[str, list[Row]]:
        """Billed amounts on the UTC days [start, end) touches, per key, project, line item."""
        with self._reading() as conn:
            return folded.cost_totals(conn, start, end)

    def data_version(self, conn: Connection | None = None) -> int:
        """Goes up with every write that changes what a report shows (read on ``conn`` when
        given: a transaction of the caller's)."""
        if conn is not None:
            with translated():
                return queries.data_version(conn)[0]
        with self._reading() as conn_:
            return queries.data_version(conn_)[0]

    def cost_totals(
        self,
        start: int,
        end: int,
        group_by: Sequence[str] = (),
        *,
        where: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Row]:
        with self._reading() as conn:
            return queries.cost_totals(conn, start, end, group_by, where=where)

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

    def person_teams(self) -> list[Row]:
        """Teams said on the People page or by the OpenID provider (see ``schema``)."""
        from . import people

        with self._reading() as conn:
            return people.person_teams(conn)

    def connections(self) -> dict[str, str]:
        """Every connection with stored rows: name → provider."""
        return {r["name"]: r["provider"] for r in self._all(schema.connections)}

    def sync_states(self) -> list[Row]:
        return self._all(schema.sync_state)

    def connection_rows(self) -> list[Row]:
        """Every connection with stored rows: name, provider, and when its limits were read."""
        return self._all(schema.connections)

    def limits(self) -> list[Row]:
        """Every connection's limits as last read (see ``schema.limits``)."""
        return self._all(schema.limits)

    def upstream_notes(self) -> list[Row]:
        """What the API refused or sent unknown, per source (see ``schema.upstream_notes``)."""
        return self._all(schema.upstream_notes)

    def sync_state(self, source: str, connection: str = schema.DEFAULT_CONNECTION) -> Row | None:
        return next(
            (
                s
                for s in self.sync_states()
                if s["source"] == source and s["connection"] == connection
            ),
            None,
        )

    def row_count(self, table: str) -> int:
        with self._reading() as conn:
            return queries.count_rows(conn, schema.metadata.tables[table])

    def _all(self, table: Any) -> list[Row]:
        with self._reading() as conn:
            return queries.table_rows(conn, table)


class _Snapshot(Store):
    """A :class:`Store` whose reads run on one connection, for the length of one computation,
    remembering its folded reads: a range's totals read for every metric and grouping answer
    a later read of fewer of them over the same range (what that read would return: its
    metrics, its rows with any of them not zero), and a range's billed costs are read once."""

    def __init__(self, store: Store, conn: Connection) -> None:
        super().__init__(store.engine, store.prices)
        self._conn = conn
        self._totals: dict[tuple[int, int], tuple[set[str], set[str], dict[str, folded.Sums]]]
        self._totals = {}
        self._costs: dict[tuple[int, int], dict[str, list[Row]]] = {}

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with translated():
            yield self._conn

    def folded_sums(
        self,
        start: int,
        end: int,
        metrics: Sequence[str],
        groupings: Sequence[str] = tuple(schema.FOLDED),
    ) -> dict[str, folded.Sums]:
        seen = self._totals.get((start, end))
        if seen is None or not (set(metrics) <= seen[0] and set(groupings) <= seen[1]):
            read = super().folded_sums(start, end, metrics, groupings)
            seen = self._totals[start, end] = (set(metrics), set(groupings), read)
        return {g: seen[2][g].only(metrics) for g in groupings}

    def folded_costs(self, start: int, end: int) -> dict[str, list[Row]]:
        days = (start - start % folded.DAY, -(-end // folded.DAY) * folded.DAY)  # as it reads
        if days not in self._costs:
            self._costs[days] = super().folded_costs(*days)
        return {g: [dict(r) for r in rows] for g, rows in self._costs[days].items()}


__all__ = ["GROUPABLE", "Row", "Store", "StoreUnavailableError", "schema", "writes"]

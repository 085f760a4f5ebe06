"""Engines, migrations at start-up, and the lock that lets exactly one process sync at a time."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_POOL = 12
"""SQLite connections kept open (each holds its own page cache, up to 2 MB): more than a busy
server uses at once, so that a request seldom opens one (a new SQLite connection reads and
parses the whole schema first); up to 40 more open for bursts (anyio's thread pool)."""
POSTGRES_POOL = (15, 5)
"""PostgreSQL connections per process: kept open, and opened beyond those for a burst (closed
again after it). A crowd needs more than SQLAlchemy's default five kept open: each one opened
and closed again starts and ends a server process, and that churn, not the queries, had put
the crowd's p99 at 200–1,000 ms. Twenty at most per process leaves four serving processes
within PostgreSQL's default max_connections of 100."""


def connect(url: str) -> Engine:
    """An engine for ``url`` (SQLite: WAL and a busy timeout, so readers never block the sync)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30}, pool_size=SQLITE_POOL, max_overflow=40
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kept, burst = POSTGRES_POOL
    return create_engine(url, pool_pre_ping=True, pool_size=kept, max_overflow=burst)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


BULK_LOADED = ("usage", "usage_folded", "usage_running", "costs", "costs_folded", "costs_running")
"""The large tables, which a first backfill fills (see :func:`after_bulk_load`)."""


def after_bulk_load(connection: Connection) -> None:
    """PostgreSQL's view of the large tables after a first backfill filled them: VACUUM
    (ANALYZE), on a ``connection`` in autocommit (VACUUM refuses a transaction). Without
    statistics (autovacuum off, or not come round yet) the planner expected 213 of a year's
    9,511 block rows and sorted them all before summing (38 ms) instead of hashing them
    (17 ms); without the visibility map a chart's days are read from the table as well as
    from the index that holds them (a 90-day chart of 96 keys: 23 ms against 8.5). Seconds,
    once (usage_folded of three large connections: 3.9 s). SQLite's reads name their index
    where the choice matters, and its ANALYZE reads every index whole: nothing to do there."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(BULK_LOADED)}")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is already there), all steps in
    one transaction: a process killed mid-way leaves the schema as it was, never half-built."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite does not open a transaction before DDL on its own (each CREATE TABLE
            # would commit alone): open one, and take the write lock so that two processes
            # starting at once migrate one after the other.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


@contextlib.contextmanager
def sync_lock(engine: Engine) -> Iterator[bool]:
    """Yields True when this process holds the sync lock, False when another one does.

    PostgreSQL: a session advisory lock, shared by every replica of the database. SQLite: an
    exclusive ``flock`` on a file beside the database, shared by every process on this machine.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"usage-tracker sync").digest()[:8], "big", signed=True)
        with engine.connect() as connection:
            got = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            )
            connection.commit()
            try:
                yield got
            finally:
                if got:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    fd = os.open(f"{database}.sync-lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

"""Shared fixtures: a fixed clock, the simulator served for real, the shared contract."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from usage_tracker import simulator
from usage_tracker.serving import BackgroundServer
from usage_tracker.upstream import AdminClient, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("USAGE_TRACKER_SHARED", ROOT.parent / "shared"))
SPEC = SHARED / "upstream" / "openai-admin-api.yaml"
EXAMPLES = SHARED / "upstream" / "examples"

NOW = int(dt.datetime(2026, 11, 25, 13, 37, 21, tzinfo=dt.UTC).timestamp())
"""A fixed "now": mid-afternoon UTC on a Wednesday, so today is a partial day."""

ADMIN_KEY = simulator.DEFAULT_ADMIN_KEY
FAST_RETRY = RetryPolicy(max_retries=8, base_delay=0.005, max_delay=0.05)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SPEC.exists():
        pytest.fail(f"the shared contract is missing: {SPEC} (set USAGE_TRACKER_SHARED)")
    return SHARED


@pytest.fixture
def sim() -> simulator.Simulator:
    return simulator.build(seed=7, days=90, clock=lambda: NOW)


@pytest.fixture
def sim_url(sim: simulator.Simulator) -> Iterator[str]:
    with BackgroundServer(sim) as server:
        yield server.url + "/v1"


@pytest.fixture
def make_client(sim_url: str) -> Iterator[Callable[..., AdminClient]]:
    clients: list[AdminClient] = []

    def make(key: str = ADMIN_KEY, **kwargs: object) -> AdminClient:
        kwargs.setdefault("retry", FAST_RETRY)
        client = AdminClient(key, sim_url, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- databases: every store test runs on SQLite and on a real PostgreSQL -------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_problem() -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as e:
        return str(e.orig).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = _postgres_problem()
    if problem:
        message = f"PostgreSQL tests were NOT run: cannot reach {POSTGRES_ADMIN_URL} ({problem})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run them (.ci/run starts PostgreSQL)")
        pytest.skip(message)
    return POSTGRES_ADMIN_URL


@contextmanager
def fresh_database(request: pytest.FixtureRequest, kind: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database of ``kind``, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'usage.db'}"
        return
    from sqlalchemy import create_engine, text

    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"ut_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url

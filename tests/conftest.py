"""Shared fixtures: a fixed clock, the simulator served for real, real databases."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient, RetryPolicy
from usage_tracker.web.serving import BackgroundServer

# A checkout's own .env (the README's setup step) must not change what the tests see; the
# processes the tests start inherit this too.
os.environ["USAGE_TRACKER_ENV_FILE"] = ""

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "upstream"
SPEC = CONTRACT / "openai-admin-api.yaml"
"""OpenAI's published contract, trimmed to what the tests check (see tests/upstream/README.md)."""
EXAMPLES = CONTRACT / "examples"

NOW = int(dt.datetime(2026, 11, 25, 13, 37, 21, tzinfo=dt.UTC).timestamp())
"""A fixed "now": mid-afternoon UTC on a Wednesday, so today is a partial day."""

ADMIN_KEY = simulator.DEFAULT_ADMIN_KEY
FAST_RETRY = RetryPolicy(max_retries=8, base_delay=0.005, max_delay=0.05)


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


# -- the whole app, served for real over a synced database ---------------------------------


class LiveApp:
    """The app on a free port over a database synced from a simulator frozen at ``now``."""

    def __init__(
        self, url: str, sim: simulator.Simulator, now: int, database_url: str, workdir: Path
    ):
        self.url, self.sim, self.now, self.database_url, self.workdir = (
            url,
            sim,
            now,
            database_url,
            workdir,
        )

    upstream_url = ""
    """Where the simulator answers (``…/v1``)."""

    @property
    def org(self) -> simulator.Organization:
        return self.sim.org


def latest(hour: int) -> int:
    """The latest whole ``hour`` o'clock UTC that is not in the future: a clock for tests whose
    figures need a day's traffic so far (the simulated organization is quiet after midnight)."""
    import time

    day = 86400
    now = int(time.time())
    at = now - now % day + hour * 3600
    return at if at <= now else at - day


@contextmanager
def live_app(
    database_url: str,
    workdir: Path,
    *,
    now: int | None = None,
    simulator_options: dict[str, Any] | None = None,
    **settings: object,
) -> Iterator[LiveApp]:
    """The app serving ``database_url`` after a sync from a simulated organization (built with
    ``simulator_options``), with the clock stopped at ``now`` (the wall clock's when None)."""
    import time

    from usage_tracker.settings import load_settings
    from usage_tracker.store import Store
    from usage_tracker.sync import sync_once
    from usage_tracker.web import create_app

    now = int(time.time()) if now is None else now
    sim = simulator.build(seed=7, days=90, clock=lambda: now, **(simulator_options or {}))
    with BackgroundServer(sim) as upstream:
        client = AdminClient(ADMIN_KEY, upstream.url + "/v1", retry=FAST_RETRY)
        store = Store.open(database_url)
        assert sync_once(store, client, now=now).errors == []
        store.close()
        config = load_settings(
            **{
                "database_url": database_url,
                "openai_admin_key": ADMIN_KEY,
                "openai_base_url": upstream.url + "/v1",
                "key_mappings_file": workdir / "api_key_mappings.json",
                "auth_mode": "none",
                **settings,
            }
        )
        app = create_app(config, client=client, run_sync=False, clock=lambda: now)
        port = int(settings["port"]) if "port" in settings else 0  # type: ignore[call-overload]
        with BackgroundServer(app, port=port) as server:
            live = LiveApp(server.url, sim, now, database_url, workdir)
            live.upstream_url = upstream.url + "/v1"
            yield live
        client.close()


@contextmanager
def serve_process(  # type: ignore[no-untyped-def]
    env: dict[str, str],
    cwd: Path,
    *,
    ready_path: str = "/static/img/favicon.svg",
    host: str = "127.0.0.1",
    reach: str = "127.0.0.1",
    startup_seconds: float = 30,
):
    """``usage-tracker serve`` as a real process on a free port of ``host``, with ``env`` on
    top of this one's; yields (base URL at the address ``reach``, path of its combined output),
    once it answers (within ``startup_seconds``). Stopped afterwards."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = cwd / f"serve-{port}.log"
    full_env = {**os.environ, **env, "HOST": host, "PORT": str(port)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "usage_tracker", "serve"],
            env=full_env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{reach}:{port}"
    try:
        wait_until_up(url + ready_path, proc, log_path.read_text, seconds=startup_seconds)
        yield url, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def wait_until_up(
    url: str, proc: Any, log: Callable[[], str] = lambda: "", *, seconds: float = 30
) -> None:
    """Until ``url`` answers (anything at all); fails when ``proc`` exits or after ``seconds``."""
    import time

    import httpx2

    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} did not come up: {log()}") from None
            time.sleep(0.1)

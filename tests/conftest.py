"""Shared fixtures: a fixed clock, the simulator served for real, the shared contract."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
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

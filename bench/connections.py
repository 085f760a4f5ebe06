"""Three connections in one tracker (issue 19): two OpenAI organizations of the large size
(seeds 1 and 2) and the first one's company as an Anthropic organization, each simulator in its
own process, synced by `sync_each` into one database; then the read figures of
:func:`bench.large_org.reads` over all three. Part ``connections`` of ``make bench``."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from usage_tracker import simulator
from usage_tracker.providers.anthropic import AnthropicClient
from usage_tracker.providers.openai import AdminClient
from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY as ANTHROPIC_KEY
from usage_tracker.store import Store
from usage_tracker.sync import Feed, SyncWindow, sync_each, sync_once

from . import harness
from .harness import ROOT

DAY = 86400


def build(
    backend: str, size: simulator.Size, days: int, latency_ms: int, postgres_url: str
) -> dict[str, Any]:
    """Backfill the three connections into ``backend`` (once a day per size); the figures."""
    from .large_org import _fresh_postgres, _size_mb

    name = f"{size.keys}k-{size.users}u-{size.projects}p-{size.models}m-{size.rows_per_hour}r"
    directory = ROOT / ".bench" / f"connections-{name}-{days}d-{int(time.time()) // DAY}"
    facts = directory / f"backfill-{backend}.json"
    if facts.exists():
        return dict(json.loads(facts.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    # A database of its own on PostgreSQL: the large organization's stays as it was built.
    own = make_url(postgres_url)
    own = own.set(database=f"{own.database}_connections")
    url = (
        f"sqlite:///{directory / 'bench.db'}"
        if backend == "sqlite"
        else own.render_as_string(hide_password=False)
    )
    if backend == "sqlite":
        (directory / "bench.db").unlink(missing_ok=True)
    else:
        _fresh_postgres(url)
    window = SyncWindow(backfill_days=days, concurrency=3)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(harness.simulator_process(days, size, latency_ms))
        second = stack.enter_context(
            harness.simulator_process(days, size, latency_ms, ["--seed=2"])
        )
        claude = stack.enter_context(
            harness.simulator_process(days, size, latency_ms, ["--provider=anthropic"])
        )
        clients = {
            "openai": AdminClient(simulator.DEFAULT_ADMIN_KEY, first.url + "/v1"),
            "staging": AdminClient(simulator.DEFAULT_ADMIN_KEY, second.url + "/v1"),
            "anthropic": AnthropicClient(ANTHROPIC_KEY, claude.url),
        }
        for client in clients.values():
            stack.callback(client.close)
        store = Store.open(url)
        started = time.perf_counter()
        report = sync_each(
            store,
            [Feed(n, c, window) for n, c in clients.items()],
            lambda f: sync_once(store, f.client, window=f.window, connection=f.connection),
        )
        wall = time.perf_counter() - started
        with store.engine.connect() as conn:
            counted = conn.execute(
                text("SELECT connection, count(*) FROM usage GROUP BY connection")
            ).all()
        store.close()
    assert not report.errors, report.errors
    result = {
        "backend": backend,
        "database": url,
        "wall_seconds": round(wall, 1),
        "requests": {n: sum(c.requests.values()) for n, c in clients.items()},
        "hourly_rows": {str(n): int(count) for n, count in counted},
        "latency_ms": latency_ms,
        "database_mb": round(_size_mb(url, directory), 1),
    }
    facts.write_text(json.dumps(result))
    return result

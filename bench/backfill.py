"""First backfill against an upstream with latency: requests against the minimum, and wall time
against pages x latency / SYNC_CONCURRENCY.

    .venv/bin/python bench/backfill.py [--latency-ms 300] [--days 90] [--concurrency 1 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer


def run(days: int, latency_ms: int, concurrency: int) -> dict[str, float]:
    now = int(time.time()) // 3600 * 3600 + 1800
    faults = simulator.Faults(latency_seconds=latency_ms / 1000)
    sim = simulator.build(seed=1, days=days, clock=lambda: now, faults=faults)
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(sim) as upstream:
        store = Store.open(f"sqlite:///{Path(tmp) / 'b.db'}")
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, upstream.url + "/v1") as client:
            window = SyncWindow(backfill_days=days, concurrency=concurrency)
            started = time.perf_counter()
            report = sync_once(store, client, window=window, now=now)
            wall = time.perf_counter() - started
            requests = sum(client.requests.values())
            retries = sum(client.retries.values())
        store.close()
    assert not report.errors, report.errors
    pages = sum(o.pages for o in report.outcomes.values())
    names = requests - retries - pages
    ideal = (pages + names) * latency_ms / 1000 / concurrency
    return {
        "concurrency": concurrency,
        "pages": pages,
        "requests": requests,
        "retries": retries,
        "wall_s": round(wall, 1),
        "ideal_s": round(ideal, 1),
        "ratio": round(wall / ideal, 2) if ideal else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    for n in args.concurrency:
        print(run(args.days, args.latency_ms, n))


if __name__ == "__main__":
    main()

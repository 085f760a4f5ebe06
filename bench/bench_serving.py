"""Serving speed: the app over a 90-day synced database, measured over real HTTP on loopback.

    .venv/bin/python bench/bench_serving.py [--requests 300] [--clients 8]

Prints p50/p95 latency and throughput for /api/usage, /api/tiers, /api/summary and the dashboard,
and how long the first (90-day) sync took. Compare with the original tracker's figures in
shared/reference/README.md (p50 ≈ 308 ms for /api/usage against a 300 ms upstream).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.settings import load_settings
from usage_tracker.store import Store
from usage_tracker.sync import sync_once
from usage_tracker.web import create_app
from usage_tracker.web.serving import BackgroundServer


def measure(url: str, requests: int, clients: int) -> tuple[float, float, float]:
    local = threading.local()  # one keep-alive client per thread, as a browser would have

    def one(_: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx2.Client(timeout=30)
        started = time.perf_counter()
        response = local.client.get(url)
        response.raise_for_status()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = sorted(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    return statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000, requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    now = int(time.time())
    sim = simulator.build(seed=1, days=90, clock=lambda: now)
    with BackgroundServer(sim) as upstream:
        database = f"sqlite:///{workdir / 'bench.db'}"
        store = Store.open(database)
        started = time.perf_counter()
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, upstream.url + "/v1") as client:
            sync_once(store, client, now=now)
        print(f"first sync (90 days, every source): {time.perf_counter() - started:.2f} s")
        store.close()
        settings = load_settings(
            database_url=database, auth_mode="none", key_mappings_file=workdir / "m.json"
        )
        with BackgroundServer(create_app(settings, run_sync=False)) as app:
            day = now - now % 86400
            paths = {
                "/api/usage 1d x7 by key": (
                    f"/api/usage?start_time={day - 6 * 86400}&group_by=api_key_id"
                ),
                "/api/usage 1h x24 by model": (
                    f"/api/usage?start_time={day}&bucket_width=1h&group_by=model"
                ),
                "/api/tiers": "/api/tiers",
                "/api/summary 30 days": f"/api/summary?start_time={day - 30 * 86400}",
                "dashboard today": "/?range=today",
                "dashboard 30 days": "/?range=30d",
            }
            print(f"{args.requests} requests from {args.clients} clients per path")
            print(f"{'path':32} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
            for label, path in paths.items():
                p50, p95, rate = measure(app.url + path, args.requests, args.clients)
                print(f"{label:32} {p50:8.1f} {p95:8.1f} {rate:8.1f}")


if __name__ == "__main__":
    main()

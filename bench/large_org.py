"""The large organization's benchmark: backfill, then summary and dashboard reads at 1, 30, 90 and
365 days, each as median and p95 over several runs, written to docs/benchmarks.md.

    .venv/bin/python bench/large_org.py [--days 365] [--keys 200 …] [--runs 7] [--write]

The organization comes from the simulator (``simulator.Size``), synced over real HTTP; the synced
database is kept under ``.bench/`` (keyed by the size) so later runs skip the backfill.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx2

from usage_tracker import simulator
from usage_tracker.serving import BackgroundServer
from usage_tracker.settings import load_settings
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.upstream import AdminClient
from usage_tracker.web import create_app

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400
RANGES = (1, 30, 90, 365)
NOTES = "<!-- analysis: kept by bench/large_org.py -->"


def _now() -> int:
    """A fixed "now" (today at 14:30 UTC) so that runs on one day read the same data."""
    today = int(time.time()) // DAY * DAY
    return today + 14 * 3600 + 1800


def build(size: simulator.Size, days: int, now: int, latency_ms: int) -> dict[str, Any]:
    """Sync the organization into .bench/ (once per size and day); the backfill's figures."""
    name = f"large-{size.keys}k-{size.users}u-{size.projects}p-{size.models}m-{size.rows_per_hour}r"
    directory = ROOT / ".bench" / f"{name}-{days}d-{now // DAY}"
    database = directory / "bench.db"
    facts = directory / "backfill.json"
    if facts.exists():
        return {**json.loads(facts.read_text()), "database": f"sqlite:///{database}"}
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    faults = simulator.Faults(rate=0.0, latency_seconds=latency_ms / 1000)
    sim = simulator.build(seed=1, days=days, clock=lambda: now, size=size, faults=faults)
    url = f"sqlite:///{database}"
    with BackgroundServer(sim) as upstream:
        store = Store.open(url)
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, upstream.url + "/v1") as client:
            started = time.perf_counter()
            report = sync_once(store, client, window=SyncWindow(backfill_days=days), now=now)
            wall = time.perf_counter() - started
            requests = sum(client.requests.values())
            retries = sum(client.retries.values())
        rows = store.row_count("usage")
        store.close()
    assert not report.errors, report.errors
    result = {
        "wall_seconds": round(wall, 1),
        "requests": requests,
        "retries": retries,
        "latency_ms": latency_ms,
        "hourly_rows": rows,
        "database_mb": round(database.stat().st_size / 1e6, 1),
    }
    facts.write_text(json.dumps(result))
    return {**result, "database": url}


def timings(
    client: httpx2.Client, path: str, params: dict[str, Any], runs: int
) -> dict[str, float]:
    """The first request (nothing cached) and the median and p95 of ``runs`` more, in ms."""
    samples = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        response = client.get(path, params=params)
        response.raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    rest = sorted(samples[1:])
    return {
        "first": round(samples[0], 1),
        "median": round(statistics.median(rest), 1),
        "p95": round(rest[min(len(rest) - 1, int(len(rest) * 0.95))], 1),
    }


def reads(database: str, now: int, runs: int) -> dict[str, Any]:
    settings = load_settings(database_url=database, auth_mode="none", refresh_seconds=0)
    app = create_app(settings, run_sync=False, clock=lambda: now)
    out: dict[str, Any] = {"summary": {}, "dashboard": {}}
    end = now - now % 3600 + 3600
    with BackgroundServer(app) as server, httpx2.Client(base_url=server.url, timeout=120) as http:
        for days in RANGES:
            start = end - days * DAY
            out["summary"][days] = timings(
                http, "/api/summary", {"start_time": start, "end_time": end}, runs
            )
            first = dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()
            last = dt.datetime.fromtimestamp(end - 1, dt.UTC).date().isoformat()
            out["dashboard"][days] = timings(
                http, "/", {"range": "custom", "start": first, "end": last}, runs
            )
    return out


def markdown(
    size: simulator.Size, days: int, backfill: dict[str, Any], measured: dict[str, Any]
) -> str:
    target = 50.0
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite; "
        "`bench/large_org.py` (run by `make bench`).",
        "",
        f"Organization: {size.keys} keys, {size.users} users, {size.projects} projects, "
        f"{size.models} models, {days} days; {backfill['hourly_rows']:,} hourly rows, "
        f"database {backfill['database_mb']} MB.",
        "",
        "## First backfill",
        "",
        f"{backfill['requests']} upstream requests ({backfill['retries']} retries) in "
        f"{backfill['wall_seconds']} s with {backfill['latency_ms']} ms of simulated latency per "
        "request.",
        "",
        "## Reads (one client; server time seen over loopback HTTP)",
        "",
        "| view | range | first (ms) | median (ms) | p95 (ms) | target p95 ≤ 50 ms |",
        "|---|---|---|---|---|---|",
    ]
    for view in ("summary", "dashboard"):
        for span, figures in measured[view].items():
            met = "met" if figures["p95"] <= target and figures["first"] <= target else "missed"
            lines.append(
                f"| {'`/api/summary`' if view == 'summary' else 'dashboard `/`'} | {span} d | "
                f"{figures['first']} | {figures['median']} | {figures['p95']} | {met} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    defaults = simulator.Size()
    for field, value in asdict(defaults).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    size = simulator.Size(args.keys, args.users, args.projects, args.models, args.rows_per_hour)
    now = _now()
    backfill = build(size, args.days, now, args.latency_ms)
    print("backfill:", {k: v for k, v in backfill.items() if k != "database"})
    measured = reads(backfill["database"], now, args.runs)
    print(json.dumps(measured, indent=1))
    text = markdown(size, args.days, backfill, measured)
    if args.write:
        target = ROOT / "docs" / "benchmarks.md"
        # What follows the marker is written by people (the analysis): kept as it is.
        kept = target.read_text().partition(NOTES)[2] if target.exists() else ""
        target.write_text(text + "\n" + NOTES + kept)
    print(text)


if __name__ == "__main__":
    main()

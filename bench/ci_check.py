"""The short form of the benchmark that CI runs (``make bench-check``): the 365-day summary on a
small organization, timed against a fixed workload on the same machine. It fails when that
ratio passes 3x the recorded one (bench/ci_baseline.json), so a slower machine does not fail it
and a regression (a year read row by row again) does. It also fails when memory passes its
bound by 20 %: the peak RSS of the first backfill (``usage-tracker sync --once`` in a process
of its own, 250 MB) and of the server after a year of views and exports (``usage-tracker
serve``, 150 MB).

    .venv/bin/python -m bench.ci_check [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from usage_tracker import reports, simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

from . import harness

BASELINE = Path(__file__).with_name("ci_baseline.json")
SIZE = simulator.Size(keys=30, users=8, projects=4, models=10, rows_per_hour=8)
DAYS, DAY, HOUR = 365, 86400, 3600
LIMIT = 3.0
BOUNDS_MB = {"backfill_peak_mb": 250, "serving_peak_mb": 150}
"""Peak RSS bounds (issue 22); the check fails past each by MEMORY_SLACK."""
MEMORY_SLACK = 1.2
CLI = [sys.executable, "-m", "usage_tracker"]


def calibration() -> float:
    """A fixed workload of the same kinds (SQLite sums and Python loops), in ms."""
    started = time.perf_counter()
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT, a INTEGER, b INTEGER)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", ((str(i % 300), i, i * 7) for i in range(50_000))
    )
    conn.execute("SELECT k, sum(a), sum(b) FROM t GROUP BY k").fetchall()
    folded: dict[str, int] = {}
    for i in range(200_000):
        key = str(i % 300)
        folded[key] = folded.get(key, 0) + i
    conn.close()
    return (time.perf_counter() - started) * 1000


def summary_ms(store: Store, now: int) -> float:
    names = reports.load_names(store)
    end = now - now % HOUR + HOUR
    started = time.perf_counter()
    reports.summary(store, names, end - DAYS * DAY, end)
    return (time.perf_counter() - started) * 1000


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTH_MODE": "none",
        "LOG_LEVEL": "warning",
        "REFRESH_SECONDS": "0",
        **extra,
    }


def backfill_peak_mb(database_url: str, upstream: str, cwd: Path) -> float:
    """The first backfill of DAYS by the CLI in a process of its own: its peak RSS."""
    env = _env(
        database_url,
        OPENAI_ADMIN_KEY=simulator.DEFAULT_ADMIN_KEY,
        OPENAI_BASE_URL=upstream + "/v1",
        BACKFILL_DAYS=str(DAYS),
    )
    subprocess.run([*CLI, "sync", "--once"], env=env, cwd=cwd, check=True, capture_output=True)
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def serving_peak_mb(database_url: str, cwd: Path, now: int) -> float:
    """``usage-tracker serve`` over the synced year: its peak RSS after every range preset of
    the dashboard, a year of /api/summary by each grouping and the year's exports."""
    port = harness.free_port()
    env = _env(database_url, PORT=str(port), RECENT_SYNC_SECONDS="0")
    server = subprocess.Popen([*CLI, "serve"], env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx2.get(url + "/api/health", timeout=5)
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        end = now - now % HOUR + HOUR
        with httpx2.Client(base_url=url, timeout=120) as http:
            for preset in ("today", "7d", "30d", "mtd", "lastmonth", "lastquarter"):
                http.get("/", params={"range": preset}).raise_for_status()
            for days in (1, 30, 90, 365):
                params = {"start_time": end - days * DAY, "end_time": end}
                http.get("/api/summary", params=params).raise_for_status()
            year = {"start_time": end - DAYS * DAY, "end_time": end}
            for by in ("key", "person", "model", "project"):
                for fmt in ("csv", "xlsx"):
                    exported = http.get("/api/export", params={**year, "by": by, "format": fmt})
                    exported.raise_for_status()
        peak_kb = harness.status_kb(server.pid, "VmHWM")
        if peak_kb is None:
            raise RuntimeError("the server exited before its peak RSS was read")
    finally:
        server.terminate()
        server.wait(30)
    return round(peak_kb / 1024, 1)


def measure() -> dict[str, float]:
    now = int(time.time())
    sim = simulator.build(seed=3, days=DAYS, clock=lambda: now, size=SIZE)
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(sim) as upstream:
        database_url = f"sqlite:///{Path(tmp) / 'check.db'}"
        backfill = backfill_peak_mb(database_url, upstream.url, Path(tmp))
        store = Store.open(database_url)
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, upstream.url + "/v1") as client:
            report = sync_once(
                store, client, window=SyncWindow(backfill_days=DAYS, concurrency=3), now=now
            )
        assert not report.errors, report.errors
        summary = statistics.median(summary_ms(store, now) for _ in range(9))
        rows = store.row_count("usage")
        store.close()
        serving = serving_peak_mb(database_url, Path(tmp), now)
    calibrated = statistics.median(calibration() for _ in range(5))
    return {
        "summary_365d_ms": round(summary, 2),
        "calibration_ms": round(calibrated, 2),
        "ratio": round(summary / calibrated, 4),
        "hourly_rows": rows,
        "backfill_peak_mb": backfill,
        "serving_peak_mb": serving,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", action="store_true", help="write the baseline")
    args = parser.parse_args()
    figures = measure()
    print(json.dumps(figures))
    if args.record:
        BASELINE.write_text(json.dumps(figures, indent=1) + "\n")
        return
    recorded = json.loads(BASELINE.read_text())
    factor = figures["ratio"] / recorded["ratio"]
    verdict = "ok" if factor <= LIMIT else "REGRESSED"
    print(
        f"365-day summary: {figures['summary_365d_ms']} ms = {figures['ratio']} x the fixed "
        f"workload; recorded {recorded['ratio']}: {factor:.2f}x the recorded ({verdict}, "
        f"limit {LIMIT}x)"
    )
    failed = factor > LIMIT
    for name, bound in BOUNDS_MB.items():
        over = figures[name] > bound * MEMORY_SLACK
        failed = failed or over
        print(
            f"{name}: {figures[name]} MB; bound {bound} MB "
            f"({'OVER by more than 20 %' if over else 'ok'})"
        )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

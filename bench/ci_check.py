"""The short form of the benchmark that CI runs (``make bench-check``): the 365-day summary on a
small organization, timed against a fixed workload on the same machine. It fails when that
ratio passes 3x the recorded one (bench/ci_baseline.json), so a slower machine does not fail it
and a regression (a year read row by row again) does.

    .venv/bin/python -m bench.ci_check [--record]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from usage_tracker import reports, simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

BASELINE = Path(__file__).with_name("ci_baseline.json")
SIZE = simulator.Size(keys=30, users=8, projects=4, models=10, rows_per_hour=8)
DAYS, DAY, HOUR = 365, 86400, 3600
LIMIT = 3.0


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


def measure() -> dict[str, float]:
    now = int(time.time())
    sim = simulator.build(seed=3, days=DAYS, clock=lambda: now, size=SIZE)
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(sim) as upstream:
        store = Store.open(f"sqlite:///{Path(tmp) / 'check.db'}")
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, upstream.url + "/v1") as client:
            report = sync_once(
                store, client, window=SyncWindow(backfill_days=DAYS, concurrency=3), now=now
            )
        assert not report.errors, report.errors
        summary = statistics.median(summary_ms(store, now) for _ in range(9))
        rows = store.row_count("usage")
        store.close()
    calibrated = statistics.median(calibration() for _ in range(5))
    return {
        "summary_365d_ms": round(summary, 2),
        "calibration_ms": round(calibrated, 2),
        "ratio": round(summary / calibrated, 4),
        "hourly_rows": rows,
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
    if factor > LIMIT:
        sys.exit(1)


if __name__ == "__main__":
    main()

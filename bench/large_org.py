"""The benchmark suite (``make bench``): a large organization synced from the simulator into
SQLite and PostgreSQL, then every figure of issue #11, written to docs/benchmarks.md.

    .venv/bin/python bench/large_org.py [--days 365] [--keys 200 …] [--runs 15] [--write]
        [--skip-postgres] [--only sync,reads,crowd,browser,memory,original,connections]

- backfill: wall time and requests against the minimum, the simulator in its own process with
  300 ms of latency per response (synced databases are kept under .bench/, one per day);
- reads of /api/summary and the dashboard for 1/30/90/365 days: the first (nothing cached,
  the view right after a sync) over distinct ranges, and repeated (the cache);
- the crowd: 50 clients on /api/summary (30 days) with 1 and 2 worker processes (wrk);
- the page in Chromium: navigation start to the load event (numbers and chart drawn);
- memory: the server's RSS before and after walking a year of /api/usage (daily, then hourly
  buckets), and each walk's time per page;
- the sync: the first backfill by ``usage-tracker sync --once`` in a process of its own
  (bench/sync_cost.py): its CPU, peak RSS and database;
- three connections (bench/connections.py): two OpenAI organizations of this size and an
  Anthropic one in one database, their backfill and the same reads over all of them;
- side by side with the original's design: a stand-in that asks the upstream twice per view.

Every server is `usage-tracker serve` in its own process, signed in with an API token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.client import PAGE_RESULTS
from usage_tracker.providers.openai.contract import (
    COSTS_DEFAULT_LIMIT,
    COSTS_MAX_LIMIT,
    MAX_LIMIT,
    SOURCES,
)
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once

from . import harness, original, sync_cost
from .harness import ROOT, stats

DAY, HOUR = 86400, 3600
RANGES = (1, 30, 90, 365)
NOTES = "<!-- analysis: kept by bench/large_org.py -->"
POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/usage_tracker_bench"
)


def minimum_requests(days: int, busiest_cost_day: int, name_requests: int) -> int:
    """The fewest requests a backfill of ``days`` can make: each source's hours in pages of
    the most buckets OpenAI allows; the costs' days a week first (OpenAI's default page), then
    as many days as keep a page within the client's PAGE_RESULTS at the busiest day's results
    (a page of 180 days of a large organization held 245,000 results: 800 MB while parsed);
    and the name lists."""
    hours = days * 24 + 24  # the backfill starts at a midnight and runs to the current hour
    usage = len(SOURCES) * math.ceil(hours / MAX_LIMIT["1h"])
    per_page = max(1, min(COSTS_MAX_LIMIT, PAGE_RESULTS // max(1, busiest_cost_day)))
    rest = max(0, days + 1 - COSTS_DEFAULT_LIMIT)
    costs = 1 + math.ceil(rest / per_page)
    return usage + costs + name_requests


def _fresh_postgres(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def build(backend: str, size: simulator.Size, days: int, latency_ms: int) -> dict[str, Any]:
    """Backfill the organization into ``backend`` (once a day per size); the backfill's figures."""
    name = f"{size.keys}k-{size.users}u-{size.projects}p-{size.models}m-{size.rows_per_hour}r"
    today = int(time.time()) // DAY
    directory = ROOT / ".bench" / f"large-{name}-{days}d-{today}"
    facts = directory / f"backfill-{backend}.json"
    if facts.exists():
        return json.loads(facts.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'bench.db'}" if backend == "sqlite" else POSTGRES
    if backend == "sqlite":
        (directory / "bench.db").unlink(missing_ok=True)
    else:
        _fresh_postgres(url)
    with harness.simulator_process(days, size, latency_ms) as sim:
        store = Store.open(url)
        with AdminClient(simulator.DEFAULT_ADMIN_KEY, sim.url + "/v1") as client:
            window = SyncWindow(backfill_days=days, concurrency=3)
            started = time.perf_counter()
            report = sync_once(store, client, window=window)
            wall = time.perf_counter() - started
            requests = sum(client.requests.values())
            retries = sum(client.retries.values())
        rows = store.row_count("usage")
        with store.engine.connect() as conn:
            busiest = conn.execute(
                text("SELECT max(n) FROM (SELECT count(*) AS n FROM costs GROUP BY day) AS d")
            ).scalar_one()
        store.close()
    assert not report.errors, report.errors
    pages = sum(o.pages for o in report.outcomes.values())
    names = requests - retries - pages
    result = {
        "backend": backend,
        "database": url,
        "wall_seconds": round(wall, 1),
        "requests": requests,
        "minimum": minimum_requests(days, int(busiest or 0), names),
        "retries": retries,
        "latency_ms": latency_ms,
        "ideal_seconds": round((pages + names) * latency_ms / 1000 / window.concurrency, 1),
        "hourly_rows": rows,
        "database_mb": round(_size_mb(url, directory), 1),
    }
    facts.write_text(json.dumps(result))
    return result


def _size_mb(url: str, directory: Path) -> float:
    if url.startswith("sqlite"):
        return sum(p.stat().st_size for p in directory.glob("bench.db*")) / 1e6
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    return int(size) / 1e6


def _range(days: int, now: int, shift: int = 0) -> tuple[int, int]:
    end = now - now % HOUR + HOUR - shift * HOUR
    return end - days * DAY, end


def _page_params(start: int, end: int) -> dict[str, str]:
    first = dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()
    last = dt.datetime.fromtimestamp(end - 1, dt.UTC).date().isoformat()
    return {"range": "custom", "start": first, "end": last}


def reads(url: str, token: str, runs: int) -> dict[str, Any]:
    """Server time over loopback HTTP, one client: the first view of each range (nothing
    cached: ``runs`` distinct ranges, each asked once) and the same view repeated."""
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx2.Client(base_url=url, headers=headers, timeout=300) as http:
        now = int(time.time())
        for view, path in (("summary", "/api/summary"), ("dashboard", "/")):
            for days in RANGES:
                first, repeat = [], []
                for shift in range(runs):
                    start, end = _range(days, now, shift)
                    if view == "summary":
                        params: dict[str, Any] = {"start_time": start, "end_time": end}
                    else:  # the page's ranges are whole days: shift the day instead
                        params = _page_params(start - shift * DAY, end - shift * DAY)
                    first.append(_timed(http, path, params))
                    if shift == 0:
                        repeat = [_timed(http, path, params) for _ in range(runs)]
                out[f"{view} {days}"] = {
                    "first": stats(first),
                    "cached": stats(repeat),
                    "load": round(os.getloadavg()[0], 1),
                }
    return out


def _timed(http: httpx2.Client, path: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = http.get(path, params=params)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def crowd(database: str, token: str, seconds: int) -> dict[str, Any]:
    """50 clients on /api/summary (30 days, the same range: the crowd's case) for ``seconds``,
    with one and with two worker processes."""
    out = {}
    start, end = _range(30, int(time.time()))
    for workers in (1, 2):
        with harness.app_process(database, workers=workers) as app:
            url = f"{app.url}/api/summary?start_time={start}&end_time={end}"
            harness.wrk(url, token, clients=50, seconds=2)  # warm every worker
            figures: dict[str, Any] = harness.wrk(url, token, clients=50, seconds=seconds)
            out[f"{workers} worker{'s' if workers > 1 else ''}"] = figures
            figures["peaks_mb"] = app.peaks_mb()
    return out


def browser(url: str, token: str, runs: int) -> dict[str, Any]:
    """Headless Chromium (Debian's): navigation start to the load event of the 30-day page,
    every number and the (server-drawn) chart in it; the first load, then ``runs`` more."""
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = chrome.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()
        for _ in range(runs + 1):
            page.goto(f"{url}/?range=30d", wait_until="load")
            page.wait_for_selector("svg.chart")
            timing = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n.loadEventEnd - n.startTime; }"
            )
            samples.append(float(timing))
        chrome.close()
    return {"first": round(samples[0], 1), **stats(samples[1:])}


def memory(database: str, token: str, days: int) -> dict[str, Any]:
    """The server's RSS before, during and after walking ``days`` of /api/usage (completions
    by key and model, every page: daily buckets 31 a page, then hourly 168 a page), and each
    walk's time per page."""
    with harness.app_process(database) as app:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=app.url, headers=headers, timeout=300) as http:
            http.get("/api/summary").raise_for_status()
            before = peak = app.rss_mb()
            end = int(time.time()) // HOUR * HOUR
            walks = {}
            for width, limit in (("1d", 31), ("1h", 168)):
                params: dict[str, Any] = {
                    "start_time": end - days * DAY,
                    "end_time": end,
                    "bucket_width": width,
                    "group_by": ["api_key_id", "model"],
                    "limit": limit,
                }
                walked, times = 0, []
                while True:
                    started = time.perf_counter()
                    with http.stream("GET", "/api/usage", params=params) as response:
                        response.raise_for_status()
                        body = b"".join(response.iter_bytes())
                    times.append((time.perf_counter() - started) * 1000)
                    walked += len(body)
                    peak = max(peak, app.rss_mb())
                    cursor = json.loads(body)["next_page"]
                    if not cursor:
                        break
                    params["page"] = cursor
                walks[width] = {
                    "pages": len(times),
                    "walked_mb": round(walked / 1e6, 1),
                    "per_page_ms": stats(times),
                    "load": round(os.getloadavg()[0], 1),
                }
            time.sleep(1)
            after = app.rss_mb()
            peaks = app.peaks_mb()
    hourly = walks["1h"]
    return {
        "before_mb": before,
        "after_mb": after,
        "peak_mb": peak,
        "walked_mb": hourly["walked_mb"],
        "pages": hourly["pages"],
        "walks": walks,
        "peaks_mb": peaks,
    }


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    harness.add_size_arguments(parser)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--crowd-seconds", type=int, default=10)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", default="sync,reads,crowd,browser,memory,original,connections")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    size = harness.size_of(args)
    (ROOT / ".bench").mkdir(exist_ok=True)
    only = set(args.only.split(","))
    results_file = ROOT / ".bench" / "results.json"
    results = _load(results_file)  # parts measured earlier today are kept unless re-run
    results["when"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results["size"] = {**asdict(size), "days": args.days}
    backends = [b for b in args.backends.split(",") if b != "postgresql" or not args.skip_postgres]

    def keep() -> None:  # each part as it is measured: a later part that fails loses none
        results_file.write_text(json.dumps(results, indent=1))

    for backend in backends:
        facts = build(backend, size, args.days, args.latency_ms)
        print(backend, "backfill:", facts, flush=True)
        results.setdefault("backfill", {})[backend] = facts
        keep()
        token = harness.api_token(facts["database"])
        if "reads" in only:
            with harness.app_process(facts["database"]) as app:
                results.setdefault("reads", {})[backend] = reads(app.url, token, args.runs)
                results.setdefault("peaks", {})[f"reads {backend}"] = app.peaks_mb()
            print(backend, "reads:", json.dumps(results["reads"][backend]), flush=True)
            keep()
        if "crowd" in only:
            results.setdefault("crowd", {})[backend] = crowd(
                facts["database"], token, args.crowd_seconds
            )
            print(backend, "crowd:", results["crowd"][backend], flush=True)
            keep()
        if backend != "sqlite":
            continue
        if "browser" in only:
            with harness.app_process(facts["database"]) as app:
                results["browser"] = browser(app.url, token, args.runs)
            print("browser:", results["browser"], flush=True)
            keep()
        if "memory" in only:
            results["memory"] = memory(facts["database"], token, args.days)
            print("memory:", results["memory"], flush=True)
            keep()
        if "sync" in only:
            results["sync"] = sync_cost.measure(size, args.days, latency_ms=0)
            print("sync:", results["sync"], flush=True)
            keep()
    if "connections" in only:
        from . import connections

        for backend in backends:
            facts = connections.build(backend, size, args.days, 0, POSTGRES)
            print(backend, "three connections:", facts, flush=True)
            token = harness.api_token(facts["database"])
            with harness.app_process(facts["database"]) as app:
                facts["reads"] = reads(app.url, token, args.runs)
                results.setdefault("peaks", {})[f"three connections, reads {backend}"] = (
                    app.peaks_mb()
                )
            results.setdefault("connections", {})[backend] = facts
            print(backend, "three connections reads:", json.dumps(facts["reads"]), flush=True)
            keep()
    if "original" in only:
        results["original"] = original.side_by_side(views=100, latency_ms=args.latency_ms)
        print("original:", results["original"], flush=True)
        keep()
    results_file.write_text(json.dumps(results, indent=1))
    from .report import markdown

    text_ = markdown(results)
    if args.write:
        target = ROOT / "docs" / "benchmarks.md"
        kept = target.read_text().partition(NOTES)[2] if target.exists() else ""
        target.write_text(text_ + "\n" + NOTES + kept)
    print(text_)
    shutil.rmtree(ROOT / ".bench" / "logs", ignore_errors=True)


if __name__ == "__main__":
    main()

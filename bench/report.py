"""docs/benchmarks.md from the figures bench/large_org.py measured: each against its target."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "read_p95_ms": 50.0,
    "page_p95_ms": 150.0,
    "crowd_rps": 1000.0,
    "crowd_p99_ms": 100.0,
    "backfill_ratio": 1.3,
    "rss_mb": 150.0,
    "sync_cpu_s": 45.0,
    "sync_rss_mb": 250.0,
    "database_mib": 300.0,
    "usage_page_ms": {"1d": 900.0, "1h": 900.0},
    "postgres_factor": 1.5,
}


def _mib(mb: float) -> float:
    """MB (10^6 bytes, as measured) in MiB (2^20 bytes, as issue 22 sets the database's
    bound)."""
    return round(mb * 1e6 / 2**20, 1)


def _met(ok: bool) -> str:
    return "**met**" if ok else "missed"


def _slack(backend: str) -> float:
    """PostgreSQL's targets are SQLite's within 1.5x (times and ratios x1.5, rates /1.5)."""
    return TARGETS["postgres_factor"] if backend == "postgresql" else 1.0


def markdown(r: dict[str, Any]) -> str:
    size = r["size"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {r['when']} on {r['machine']}; `make bench` (bench/large_org.py). Every "
        "server is `usage-tracker serve` in its own process, signed in with an API token; the "
        "simulator runs in its own process too. PostgreSQL's targets are the same within 1.5× "
        "(times and ratios ×1.5, requests per second ÷1.5).",
        "",
        f"Organization: {size['keys']} keys, {size['users']} users, {size['projects']} "
        f"projects, {size['models']} models, {size['days']} days, about "
        f"{size['rows_per_hour']} completion rows an hour.",
        "",
        "## First backfill",
        "",
        "| backend | hourly rows | requests (minimum) | retries | wall | pages × latency ÷ 3 "
        "| ratio (target ≤ 1.3) | database | per million rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, b in r.get("backfill", {}).items():
        ratio = b["wall_seconds"] / b["ideal_seconds"] if b["ideal_seconds"] else 0
        per_million = b["database_mb"] * 1e6 / max(1, b["hourly_rows"])
        lines.append(
            f"| {backend} | {b['hourly_rows']:,} | {b['requests']} ({b['minimum']}) | "
            f"{b['retries']} | {b['wall_seconds']} s | {b['ideal_seconds']} s | "
            f"{ratio:.2f} {_met(ratio <= TARGETS['backfill_ratio'] * _slack(backend))} | "
            f"{b['database_mb']} MB | "
            f"{per_million:.0f} MB |"
        )
    latency = next(iter(r.get("backfill", {}).values()), {}).get("latency_ms", "?")
    lines += [
        "",
        f"Latency per upstream response: {latency} ms.",
        "",
        "## Reads, one client (server time over loopback HTTP, ms)",
        "",
        "*First*: each view asked once, over distinct ranges (nothing cached: the view right "
        "after a sync). *Cached*: the same view again. Target: p95 ≤ 50 ms.",
        "",
        "| backend | view | range | first median | first p95 | cached median | cached p95 | "
        "target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reads = r.get("reads", {})
    lines += _read_rows(reads)
    if "sqlite" in reads and "postgresql" in reads:
        worst = max(
            reads["postgresql"][k]["first"]["p95"] / max(0.1, reads["sqlite"][k]["first"]["p95"])
            for k in reads["sqlite"]
        )
        lines += [
            "",
            f"PostgreSQL against SQLite measured here, worst first-view p95: {worst:.2f}× (a "
            f"stricter reading of “within 1.5×”: {_met(worst <= TARGETS['postgres_factor'])}).",
        ]
    lines += [
        "",
        "## A crowd: 50 clients on `/api/summary` (30 days), wrk",
        "",
        "| backend | workers | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | target "
        "(≥ 1,000/s, p99 ≤ 100 ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, runs in r.get("crowd", {}).items():
        for workers, c in runs.items():
            slack = _slack(backend)
            ok = (
                c["rps"] >= TARGETS["crowd_rps"] / slack
                and c.get("p99", 1e9) <= TARGETS["crowd_p99_ms"] * slack
            )
            lines.append(
                f"| {backend} | {workers} | {c['rps']:,.0f} | {c.get('p50')} | {c.get('p90')} | "
                f"{c.get('p99')} | {c['errors']:.0f} | "
                f"{_met(ok) if workers.startswith('2') else '—'} |"
            )
    if "browser" in r:
        b = r["browser"]
        lines += [
            "",
            "## The page in Chromium (30 days)",
            "",
            "Headless Chromium (Debian's), navigation start to the load event: every number "
            "and the chart (drawn by the server as SVG) are in the HTML.",
            "",
            f"First load {b['first']} ms; then median {b['median']} ms, p95 {b['p95']} ms "
            f"(target p95 ≤ 150 ms: {_met(b['p95'] <= TARGETS['page_p95_ms'])}).",
        ]
    if "memory" in r:
        m = r["memory"]
        lines += [
            "",
            "## Memory",
            "",
            f"Serving RSS {m['before_mb']} MB before walking a year of `/api/usage` (by key "
            "and model, daily buckets then hourly ones), "
            f"{m['peak_mb']} MB at the peak, {m['after_mb']} MB after "
            f"(target ≤ 150 MB: {_met(max(m['peak_mb'], m['after_mb']) <= TARGETS['rss_mb'])}).",
        ]
        walks = m.get("walks", {})
        if walks:
            lines += [
                "",
                "| walk | pages | JSON | per page median | per page p95 | target | load |",
                "|---|---|---|---|---|---|---|",
            ]
            for width, w in walks.items():
                target = TARGETS["usage_page_ms"][width]
                p95 = w["per_page_ms"]["p95"]
                lines.append(
                    f"| {width} × {'31' if width == '1d' else '168'} a page | {w['pages']} | "
                    f"{w['walked_mb']} MB | {w['per_page_ms']['median']} ms | {p95} ms | "
                    f"≤ {target} ms {_met(p95 <= target)} | {w['load']} |"
                )
    if "sync" in r:
        y = r["sync"]
        lines += [
            "",
            "## The first backfill as a process of its own (SQLite)",
            "",
            "`usage-tracker sync --once` with BACKFILL_DAYS of the organization above against "
            "the simulator in its own process, answering at once (no latency: the CPU is the "
            "sync's own work).",
            "",
            "| wall | CPU (user + sys) | peak RSS | database | load |",
            "|---|---|---|---|---|",
            f"| {y['wall_seconds']} s | {y['cpu_seconds']} s "
            f"(≤ {TARGETS['sync_cpu_s']:.0f} s: {_met(y['cpu_seconds'] <= TARGETS['sync_cpu_s'])}) "
            f"| {y['peak_rss_mb']} MB "
            f"(≤ {TARGETS['sync_rss_mb']:.0f}: {_met(y['peak_rss_mb'] <= TARGETS['sync_rss_mb'])}) "
            f"| {y['database_mb']} MB = {_mib(y['database_mb'])} MiB "
            f"(≤ {TARGETS['database_mib']:.0f} MiB: "
            f"{_met(_mib(y['database_mb']) <= TARGETS['database_mib'])}) "
            f"| {y['load']} |",
        ]
    lines += _peaks(r)
    lines += _issue_22(r)
    if "connections" in r:
        lines += _connections(r["connections"])
    if "original" in r:
        o = r["original"]
        lines += [
            "",
            "## Side by side with the original's design",
            "",
            f"The same simulated organization, {o['latency_ms']} ms per upstream response, "
            f"{o['views']} page views each. The stand-in asks the upstream twice per view, one "
            "request after the other, as the original did; this app reads its database (its "
            "background sync running as configured by default).",
            "",
            "| | page view median (ms) | p95 (ms) | upstream requests per 100 views |",
            "|---|---|---|---|",
        ]
        for who in ("original", "this app"):
            s = o[who]
            lines.append(f"| {who} | {s['median']} | {s['p95']} | {s['upstream_per_100_views']} |")
    return "\n".join(lines) + "\n"


def _peaks(r: dict[str, Any]) -> list[str]:
    """The peak RSS of every process each part started: the server, each worker, the sync."""
    serving = TARGETS["rss_mb"]
    rows: list[tuple[str, str, float, float]] = []
    for part, peaks in r.get("peaks", {}).items():
        rows += [(part, p, mb, serving) for p, mb in peaks.items()]
    for backend, runs in r.get("crowd", {}).items():
        for workers, c in runs.items():
            label = f"crowd {backend}, {workers}"
            rows += [(label, p, mb, serving) for p, mb in c.get("peaks_mb", {}).items()]
    if "memory" in r:
        label = "a year of `/api/usage` walked, sqlite"
        rows += [(label, p, mb, serving) for p, mb in r["memory"].get("peaks_mb", {}).items()]
    if "sync" in r:
        sync = r["sync"]
        rows.append(
            ("first backfill, sqlite", "sync --once", sync["peak_rss_mb"], TARGETS["sync_rss_mb"])
        )
    if not rows:
        return []
    lines = [
        "",
        "## Peak memory of every process",
        "",
        "Each process's peak resident memory (VmHWM) at the end of the part that started it: "
        "`serve`, each of its workers when there are several, and the sync. *reads*: the "
        "first and cached views above.",
        "",
        "| part | process | peak RSS | bound |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {part} | {process} | {mb} MB | ≤ {bound:.0f} MB: {_met(mb <= bound)} |"
        for part, process, mb, bound in rows
    ]
    return lines


def _issue_22(r: dict[str, Any]) -> list[str]:
    """Issue 22's figures (the large organization on SQLite): turn 2's, what the issue
    measured, and this run's, each beside its target and the machine's load."""
    sync, m = r.get("sync"), r.get("memory")
    reads = r.get("reads", {}).get("sqlite")
    if not (sync and m and reads):
        return []
    walk = m.get("walks", {}).get("1d")
    year = {v: reads[f"{v} 365"] for v in ("summary", "dashboard")}

    def view(v: str) -> str:
        first = year[v]["first"]
        return f"{first['median']} ({first['p95']})"

    rows = [
        (
            "serving RSS: before / peak / after a year of `/api/usage`",
            "111 / — / — MiB",
            "155 / — / 256 MiB",
            f"{m['before_mb']} / {m['peak_mb']} / {m['after_mb']} MB",
            "≤ 150 MB",
            walk["load"] if walk else "",
        ),
        (
            "first backfill, peak RSS (the project's simulator)",
            "140 MiB",
            "814 MiB",
            f"{sync['peak_rss_mb']} MB",
            "≤ 250 MB",
            sync["load"],
        ),
        (
            "first backfill, CPU of the sync (user + sys)",
            "35.5 s",
            "121.6 s (busy machine)",
            f"{sync['cpu_seconds']} s",
            "≤ 45 s",
            sync["load"],
        ),
        (
            "database after the backfill (the project's simulator)",
            "251 MiB",
            "557 MiB",
            f"{_mib(sync['database_mb'])} MiB",
            "≤ 300 MiB",
            sync["load"],
        ),
    ]
    if walk:
        rows.append(
            (
                "`/api/usage` walk, 1d × 31 a page, by key and model: per page (p95)",
                "934 ms",
                "3,260 ms (busy machine)",
                f"{walk['per_page_ms']['median']} ms ({walk['per_page_ms']['p95']})",
                "≤ 900 ms",
                walk["load"],
            )
        )
    rows.append(
        (
            "365-day first view, summary / dashboard: p50 (p95) ms",
            "—",
            "70.8 (91.9) / 153 (269)",
            f"{view('summary')} / {view('dashboard')}",
            "p95 ≤ 50 both",
            year["dashboard"]["load"],
        )
    )
    lines = [
        "",
        "## Issue 22's figures (this organization, SQLite)",
        "",
        "Turn 2's figures and the issue's were measured from outside against an independent "
        "stand-in (except where the project's simulator is named); the machine's load is the "
        "one-minute average when each figure of this run was taken. `WORKERS=2` start-up: "
        "tests/test_workers.py starts two workers under a CPU hog and asserts none restarts.",
        "",
        "| figure | turn 2 | issue 22 | this run | target | load |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(str(c) for c in row)} |" for row in rows]
    return lines


def _connections(runs: dict[str, Any]) -> list[str]:
    """Three connections in one tracker: the backfill and the reads over all of them."""
    lines = [
        "",
        "## Three connections: two OpenAI organizations of this size and an Anthropic one",
        "",
        "`openai` and `staging` are two organizations of the size above (seeds 1 and 2), "
        "`anthropic` is the first one's company on Anthropic's Admin API (its completions as "
        "Claude traffic, a week of hours per page). Each simulator in its own process, answering "
        "at once (no latency: the wall is the sync's own work); the "
        "sync reads the connections one after the other into one database; the server reads "
        "across all three (every view below is of every connection, as a user first sees it).",
        "",
        "| backend | hourly rows per connection | requests per connection | wall | database |",
        "|---|---|---|---|---|",
    ]
    for backend, c in runs.items():
        rows = ", ".join(f"{n} {v:,}" for n, v in c["hourly_rows"].items())
        requests = ", ".join(f"{n} {v}" for n, v in c["requests"].items())
        lines.append(
            f"| {backend} | {rows} | {requests} | {c['wall_seconds']} s | {c['database_mb']} MB |"
        )
    lines += [
        "",
        "| backend | view | range | first median | first p95 | cached median | cached p95 | "
        "target (p95 ≤ 50 ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return lines + _read_rows({backend: c["reads"] for backend, c in runs.items()})


def _read_rows(reads: dict[str, dict[str, Any]]) -> list[str]:
    """A row per backend, view and range: first and cached median and p95, against the target."""
    lines = []
    for backend, views in reads.items():
        for name, figures in views.items():
            view, days = name.split()
            first, cached = figures["first"], figures["cached"]
            limit = TARGETS["read_p95_ms"] * _slack(backend)
            ok = first["p95"] <= limit and cached["p95"] <= limit
            label = "`/api/summary`" if view == "summary" else "dashboard `/`"
            lines.append(
                f"| {backend} | {label} | {days} d | {first['median']} | {first['p95']} | "
                f"{cached['median']} | {cached['p95']} | {_met(ok)} |"
            )
    return lines

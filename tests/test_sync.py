"""sync_once against the simulator, on SQLite and PostgreSQL: exact, idempotent, resumable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.store import Store, StoreUnavailableError
from usage_tracker.store.schema import STORED_AS
from usage_tracker.sync import (
    ALL,
    COSTS,
    LoopStatus,
    SyncReport,
    SyncWindow,
    guarded,
    run_forever,
    sync_once,
    sync_recent,
)
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW

DAY = 86400


def _stored_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def assert_store_matches_truth(
    store: Store,
    org: simulator.Organization,
    start: int,
    end: int,
    *,
    costs: bool = True,
    connection: str | None = None,
) -> None:
    """Every source, grouped by every dimension it has, and costs by every cost dimension,
    equal the simulator's truth over [start, end) (of the rows of ``connection`` alone, when
    given)."""
    where = None if connection is None else {"connection": [connection]}
    for name, source in SOURCES.items():
        columns = [STORED_AS[d] for d in source.group_by]
        rows = store.usage_totals(
            start, end + 3600, columns, sources=[name], metrics=source.metrics, where=where
        )
        got = {tuple(r[c] for c in columns): {m: r[m] for m in source.metrics} for r in rows}
        truth = {
            tuple(_stored_value(v) for v in key): metrics
            for key, metrics in org.truth(name, start, end, source.group_by).items()
            if any(metrics.values())
        }
        assert got == truth, name
    if not costs:
        return
    group = ["project_id", "line_item", "api_key_id"]
    cost_rows = store.cost_totals(start - start % DAY, end + DAY, group, where=where)
    got_costs = {tuple(r[g] for g in group): r["amount"] for r in cost_rows}
    truth_costs = {
        tuple(v or "" for v in k): v
        for k, v in org.cost_truth(start - start % DAY, end, group).items()
    }
    assert got_costs == truth_costs


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url)
    yield store
    store.close()


@pytest.fixture
def served(sim: simulator.Simulator) -> Iterator[tuple[simulator.Simulator, AdminClient]]:
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        yield sim, client


def test_a_first_sync_backfills_90_days_exactly(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    sim, client = served
    report = sync_once(store, client, now=NOW)
    assert report.errors == []
    assert set(report.outcomes) == set(ALL)
    state = store.sync_state("completions")
    assert state is not None
    assert state["backfill_complete"]
    assert state["backfill_from"] == NOW - NOW % DAY - 90 * DAY
    assert_store_matches_truth(store, sim.org, state["backfill_from"], NOW)
    # 91 days and 14 hours of 1h buckets: 13 pages of at most 168.
    assert all(client.requests[s] == 13 for s in SOURCES)


def test_a_second_sync_asks_once_per_source_and_changes_nothing(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    _sim, client = served
    sync_once(store, client, now=NOW)
    counts = {t: store.row_count(t) for t in ("usage", "usage_folded", "costs")}
    before = store.usage_totals(0, NOW + 3600, ["api_key_id", "model", "source"])
    client.requests.clear()
    report = sync_once(store, client, now=NOW + 30)
    assert report.errors == []
    assert all(client.requests[s] <= 1 for s in (*SOURCES, COSTS))
    names = client.requests["projects"] + client.requests["api_keys"] + client.requests["users"]
    assert sum(client.requests.values()) - names == len(ALL)
    assert {t: store.row_count(t) for t in counts} == counts
    assert store.usage_totals(0, NOW + 3600, ["api_key_id", "model", "source"]) == before


def test_late_data_is_picked_up_by_the_next_sync(store: Store) -> None:
    sim = simulator.build(seed=3, days=5, clock=lambda: NOW, late_hours=4)
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        window = SyncWindow(backfill_days=5)
        sync_once(store, client, window=window, now=NOW)
        first = store.usage_totals(0, NOW + 3600, sources=["completions"])[0]["input_tokens"]
        sim.org.revise()
        sim.org.revise()
        sync_once(store, client, window=window, now=NOW)
    start = store.sync_state("completions")["backfill_from"]  # type: ignore[index]
    assert store.usage_totals(0, NOW + 3600, sources=["completions"])[0]["input_tokens"] > first
    assert_store_matches_truth(store, sim.org, start, NOW)


def test_new_hours_arrive_as_time_passes(store: Store) -> None:
    clock = {"now": NOW}
    sim = simulator.build(seed=4, days=3, clock=lambda: clock["now"])
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        window = SyncWindow(backfill_days=3)
        sync_once(store, client, window=window, now=clock["now"])
        clock["now"] += 5 * 3600 + 17 * 60
        sync_once(store, client, window=window, now=clock["now"])
    start = store.sync_state("completions")["backfill_from"]  # type: ignore[index]
    assert_store_matches_truth(store, sim.org, start, clock["now"])


def test_an_upstream_outage_keeps_stored_data_and_the_next_sync_heals(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    sim, client = served
    window = SyncWindow(backfill_days=10)
    sync_once(store, client, window=window, now=NOW)
    before = store.usage_totals(0, NOW + 3600, ["source", "model"])
    # The next sync finds OpenAI failing for longer than the client retries.
    sim.faults.force(*["500"] * 200)
    report = sync_once(store, client, window=window, now=NOW)
    assert report.errors
    assert all("unavailable" in e or "names" in e for e in report.errors)
    assert store.usage_totals(0, NOW + 3600, ["source", "model"]) == before
    state = store.sync_state("completions")
    assert state is not None
    assert "unavailable" in (state["last_error"] or "")
    sim.faults.forced.clear()
    assert sync_once(store, client, window=window, now=NOW).errors == []
    assert store.sync_state("completions")["last_error"] is None  # type: ignore[index]
    assert_store_matches_truth(store, sim.org, NOW - NOW % DAY - 10 * DAY, NOW)


def test_a_refused_key_is_recorded_for_every_source_without_the_key(
    store: Store, sim_url: str
) -> None:
    key = "sk-proj-ThisIsAProjectKey0123456789"
    with AdminClient(key, sim_url, retry=FAST_RETRY) as client:
        report = sync_once(store, client, now=NOW)
    assert len(report.errors) == len(ALL) + 1
    assert sum(client.requests.values()) == 1  # one refusal is enough: nothing else is asked
    for state in store.sync_states():
        assert "api.usage.read" in state["last_error"]
        assert key not in state["last_error"]


def test_names_are_kept_after_a_key_disappears_upstream(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    sim, client = served
    sync_once(store, client, window=SyncWindow(backfill_days=2), now=NOW)
    listed = {k["id"] for k in store.api_keys()}
    live = next(k for k in sim.org.keys if k.id in listed)
    sim.org.keys.remove(live)  # deleted upstream
    sync_once(store, client, window=SyncWindow(backfill_days=2), now=NOW)
    kept = {k["id"]: k for k in store.api_keys()}
    assert kept[live.id]["name"] == live.name
    archived = [p for p in store.projects() if p["archived_at"]]
    assert archived
    assert archived[0]["name"] == "Legacy Chat"


def test_since_refetches_an_older_range(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    sim, client = served
    sync_once(store, client, window=SyncWindow(backfill_days=3), now=NOW)
    client.requests.clear()
    sync_once(store, client, window=SyncWindow(backfill_days=3, since=NOW - 20 * DAY), now=NOW)
    assert client.requests["completions"] == 3  # 20 days and a bit: 3 pages of 168 hours
    since = NOW - 20 * DAY
    assert_store_matches_truth(store, sim.org, since - since % 3600, NOW)


def test_only_one_of_two_concurrent_syncers_syncs(database_url: str, sim_url: str) -> None:
    sim_store = [Store.open(database_url), Store.open(database_url)]
    barrier = threading.Barrier(2)
    reports = []

    def run(store: Store) -> None:
        with AdminClient(ADMIN_KEY, sim_url, retry=FAST_RETRY) as client:
            barrier.wait()
            reports.append(sync_once(store, client, window=SyncWindow(backfill_days=30), now=NOW))

    threads = [threading.Thread(target=run, args=(s,)) for s in sim_store]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.skipped for r in reports) == [False, True]
    sim = simulator.build(seed=7, days=90, clock=lambda: NOW)  # the organization behind sim_url
    assert_store_matches_truth(sim_store[0], sim.org, NOW - NOW % DAY - 30 * DAY, NOW)
    for store in sim_store:
        store.close()


def _kill_backfill_at_random_points(env: dict[str, str], points: int, rng: random.Random) -> int:
    kills = 0
    for _ in range(points * 4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "usage_tracker", "sync", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.6, 1.6))  # at most ~15 % of the backfill per run
        if proc.poll() is not None:
            break  # the backfill finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if kills == points:
            break
    return kills


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    t0 = int(time.time())
    faults = simulator.Faults(latency_seconds=0.05)  # a full backfill takes about 8 s
    sim = simulator.build(seed=9, days=90, clock=lambda: t0, faults=faults)
    rng = random.Random(t0)
    with BackgroundServer(sim) as server:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "OPENAI_BASE_URL": server.url + "/v1",
            "OPENAI_ADMIN_KEY": ADMIN_KEY,
            "BACKFILL_DAYS": "90",
        }
        kills = _kill_backfill_at_random_points(env, 5, rng)
        assert kills >= 5, "the backfill finished before five kills; raise the simulator latency"
        partial = Store.open(database_url)
        done = [s for s in partial.sync_states() if s["backfill_complete"]]
        assert len(done) < len(ALL), "the kills did not interrupt the backfill"
        subprocess.run(
            [sys.executable, "-m", "usage_tracker", "sync", "--once"],
            env=env,
            check=True,
            capture_output=True,
        )
    states = partial.sync_states()
    assert all(s["backfill_complete"] for s in states)
    backfill_from = min(s["backfill_from"] for s in states)
    assert_store_matches_truth(partial, sim.org, backfill_from, t0 + 1)
    # Nothing duplicated: a clean single sync of the same range stores exactly the same rows.
    reference = Store.open(f"sqlite:///{tmp_path / 'reference.db'}")
    days = (t0 - t0 % DAY - backfill_from) // DAY
    with (
        BackgroundServer(simulator.build(seed=9, days=90, clock=lambda: t0)) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1") as client,
    ):
        sync_once(reference, client, window=SyncWindow(backfill_days=days), now=t0)
    for table in ("usage", "usage_folded", "costs"):
        assert partial.row_count(table) == reference.row_count(table), table
    partial.close()
    reference.close()


def test_since_never_skips_the_gap_of_an_unfinished_backfill(
    store: Store, served: tuple[simulator.Simulator, AdminClient]
) -> None:
    sim, client = served
    names = 1 + len(sim.org.projects) + 1  # projects, each project's keys, users
    # Three pages of completions arrive, then OpenAI fails for longer than the client retries.
    sim.faults.force(*["ok"] * (names + 3), *["500"] * (FAST_RETRY.max_retries + 1))
    report = sync_once(store, client, window=SyncWindow(backfill_days=60), now=NOW)
    assert "completions" in " ".join(report.errors)
    state = store.sync_state("completions")
    assert state is not None
    assert not state["backfill_complete"]
    assert (
        sync_once(
            store, client, window=SyncWindow(backfill_days=60, since=NOW - 2 * DAY), now=NOW
        ).errors
        == []
    )
    assert store.sync_state("completions")["backfill_complete"]  # type: ignore[index]
    assert_store_matches_truth(store, sim.org, state["backfill_from"], NOW)


def test_the_recent_pass_asks_once_per_source_and_picks_up_the_last_two_hours(
    store: Store,
) -> None:
    clock = {"now": NOW}
    sim = simulator.build(seed=5, days=3, clock=lambda: clock["now"], late_hours=1)
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        sync_once(store, client, window=SyncWindow(backfill_days=3), now=NOW)
        sim.org.revise()  # OpenAI fills in the last hours
        clock["now"] = NOW + 50
        before = sum(sim.requests.values())
        report = sync_recent(store, client, now=clock["now"])
        assert report.errors == []
        assert sum(sim.requests.values()) - before == len(SOURCES)  # one request per source
    start = store.sync_state("completions")["backfill_from"]  # type: ignore[index]
    assert_store_matches_truth(store, sim.org, start, clock["now"], costs=False)  # costs: full sync
    assert all(
        s["last_success_at"] == clock["now"] for s in store.sync_states() if s["source"] != COSTS
    )


def test_the_recent_pass_leaves_an_unfinished_backfill_to_the_full_sync(store: Store) -> None:
    sim = simulator.build(seed=5, days=3, clock=lambda: NOW)
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        report = sync_recent(store, client, now=NOW)
    assert report.outcomes == {}
    assert sum(sim.requests.values()) == 0
    assert store.row_count("usage") == 0


def test_the_loop_records_a_database_failure_in_words_and_clears_it_after() -> None:
    status = LoopStatus()

    def failing() -> SyncReport:
        raise StoreUnavailableError("The database cannot be written: the disk is full.")

    guarded(failing, status)
    assert status.error == "The database cannot be written: the disk is full."
    guarded(lambda: (_ for _ in ()).throw(KeyError("x")), status)  # type: ignore[arg-type]
    assert "unexpectedly (KeyError)" in (status.error or "")
    guarded(SyncReport, status)
    assert status.error is None


def test_the_loop_runs_the_recent_pass_between_full_syncs() -> None:
    calls: list[str] = []
    stopping = threading.Event()

    def full() -> SyncReport:
        calls.append("full")
        if calls.count("full") == 2:
            stopping.set()
        return SyncReport()

    def recent() -> SyncReport:
        calls.append("recent")
        return SyncReport()

    run_forever(
        full, 0.35, stopping, recent=recent, recent_seconds=0.1, after=lambda: calls.append("after")
    )
    assert (calls[0], calls[-1]) == ("full", "after")
    # The alerts (``after``) follow every pass, the full ones and the recent ones.
    passes = [c for c in calls if c != "after"]
    assert set(passes[1:-1]) == {"recent"}
    assert calls == [c for p in passes for c in (p, "after")]


def test_the_alerts_follow_a_pass_that_failed_too() -> None:
    calls: list[str] = []
    stopping = threading.Event()

    def broken() -> SyncReport:
        stopping.set()
        raise StoreUnavailableError("The database is not answering.")

    status = LoopStatus()
    run_forever(broken, 10, stopping, status=status, after=lambda: calls.append("after"))
    assert calls == ["after"]
    assert status.error == "The database is not answering."


def _html_server() -> BackgroundServer:
    async def portal(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b"<html><body>Please accept the terms of this Wi-Fi</body></html>"
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return BackgroundServer(portal)


def test_an_upstream_answering_html_fails_every_source_in_words_after_one_request(
    store: Store,
) -> None:
    with _html_server() as server, AdminClient(ADMIN_KEY, server.url + "/v1") as client:
        report = sync_once(store, client, window=SyncWindow(backfill_days=2), now=NOW)
        assert sum(client.requests.values()) == 1  # a mistyped URL is not retried per source
    assert report.errors
    assert all("text/html, not JSON" in e for e in report.errors)
    assert all("OPENAI_BASE_URL" in (s["last_error"] or "") for s in store.sync_states())
    assert len(store.sync_states()) == len(ALL)


def test_an_unreachable_upstream_fails_the_sync_in_a_few_attempts(store: Store) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with AdminClient(ADMIN_KEY, f"http://127.0.0.1:{port}/v1", retry=FAST_RETRY) as client:
        report = sync_once(store, client, window=SyncWindow(backfill_days=2), now=NOW)
        attempts = sum(client.requests.values())
    assert attempts == FAST_RETRY.max_connect_retries + 1
    assert all("Cannot connect to 127.0.0.1" in e for e in report.errors)
    assert len(report.errors) == len(ALL) + 1  # names and every source say so


def test_costs_that_settle_late_are_fetched_again_for_costs_lookback_days(store: Store) -> None:
    """Costs revised 56 hours back (two calendar days ago at this NOW) are picked up by the
    next sync, which re-fetches the last three days of costs."""
    sim = simulator.build(seed=6, days=6, clock=lambda: NOW, late_hours=56)
    group = ["project_id", "line_item", "api_key_id"]

    def costs_equal_the_truth() -> bool:
        start = store.sync_state(COSTS)["backfill_from"]  # type: ignore[index]
        got = {
            tuple(r[g] for g in group): r["amount"]
            for r in store.cost_totals(start, NOW + DAY, group)
        }
        truth = {
            tuple(v or "" for v in k): v for k, v in sim.org.cost_truth(start, NOW, group).items()
        }
        return got == truth

    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        window = SyncWindow(backfill_days=6, costs_lookback_days=3)
        sync_once(store, client, window=window, now=NOW)
        sim.org.revise()
        sim.org.revise()
        assert not costs_equal_the_truth()  # the revision changed costs two days back
        sync_once(store, client, window=window, now=NOW)
    assert costs_equal_the_truth()


def test_sources_are_fetched_at_once_up_to_the_concurrency_and_stay_exact(store: Store) -> None:
    sim = simulator.build(
        seed=7, days=90, clock=lambda: NOW, faults=simulator.Faults(latency_seconds=0.03)
    )
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        report = sync_once(store, client, now=NOW, window=SyncWindow(concurrency=3))
    assert report.errors == []
    assert sim.max_in_flight == 3
    assert all(client.requests[s] == 13 for s in SOURCES)  # the minimum, as one at a time
    assert sum(client.retries.values()) == 0
    assert_store_matches_truth(store, sim.org, NOW - NOW % DAY - 90 * DAY, NOW)


def test_a_429_holds_back_every_source_for_the_time_it_asks(store: Store) -> None:
    wait = 0.6
    faults = simulator.Faults(
        rate=0.05, kinds=("429",), seed=5, retry_after_ms=int(wait * 1000), latency_seconds=0.01
    )
    sim = simulator.build(seed=7, days=90, clock=lambda: NOW, faults=faults)
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        report = sync_once(store, client, now=NOW, window=SyncWindow(concurrency=3))
    assert report.errors == []
    assert_store_matches_truth(store, sim.org, NOW - NOW % DAY - 90 * DAY, NOW)
    refused = [t for t, _path, status in sim.log if status == 429]
    assert refused
    assert sum(client.retries.values()) == len(refused)
    # Once the client has its 429 (allow for requests already on their way), nothing arrives
    # from any source until the wait is over.
    slack = 0.15
    for t in refused:
        early = [a for a, _p, _s in sim.log if t + slack < a < t + wait - 0.02]
        assert early == [], (t, early)


def test_the_next_page_is_asked_for_while_the_last_one_is_written(
    store: Store, served: tuple[simulator.Simulator, AdminClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetching and writing overlap, even one source at a time: the first page of completions
    is not written until its second page has been asked for (one after the other, that wait
    would time out), and everything still lands exactly."""
    from usage_tracker.store import writes

    sim, client = served
    written = writes.replace_usage
    overlapped: list[bool] = []

    def slow_write(conn: object, source: str, *args: object, **kwargs: object) -> int:
        if source == "completions" and not overlapped:
            deadline = time.monotonic() + 10
            while client.requests["completions"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            overlapped.append(client.requests["completions"] >= 2)
        return written(conn, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writes, "replace_usage", slow_write)
    report = sync_once(store, client, now=NOW, window=SyncWindow(concurrency=1))
    assert report.errors == []
    assert overlapped == [True]
    assert all(client.requests[s] == 13 for s in SOURCES)
    assert_store_matches_truth(store, sim.org, NOW - NOW % DAY - 90 * DAY, NOW)

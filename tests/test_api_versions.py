"""An API that changes under a deployed tracker costs only what changed: the simulator answering
as OpenAI's API did in 2026-08 (no api_source dimension, no Decisions source) and as a newer one
(a field this version does not know)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.store import Store
from usage_tracker.sync import RECHECK_SECONDS, SyncWindow, sync_once, sync_recent
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW, live_app

DAY = 86400
WINDOW = SyncWindow(backfill_days=10)


@contextmanager
def served(api_version: str) -> Iterator[tuple[simulator.Simulator, AdminClient]]:
    clock = [float(NOW)]
    sim = simulator.build(seed=7, days=12, clock=lambda: clock[0], api_version=api_version)
    with (
        BackgroundServer(sim) as server,
        AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
    ):
        yield sim, client


def _tokens(store: Store, source: str, start: int, end: int) -> dict[str, int]:
    rows = store.usage_totals(
        start, end, [], sources=[source], metrics=["input_tokens", "output_tokens"]
    )
    return (
        {"input_tokens": rows[0]["input_tokens"], "output_tokens": rows[0]["output_tokens"]}
        if rows
        else {}
    )


def _truth(org: simulator.Organization, source: str, start: int, end: int) -> dict[str, int]:
    (totals,) = org.truth(source, start, end).values()
    return {"input_tokens": totals["input_tokens"], "output_tokens": totals["output_tokens"]}


def _notes(store: Store) -> set[tuple[str, str, str]]:
    return {(n["source"], n["kind"], n["detail"]) for n in store.upstream_notes()}


def test_an_api_that_refuses_api_source_still_counts_every_token(database_url: str) -> None:
    """Before: the 400 "Invalid group_by" dropped every completion token (the dashboard would
    have shown zero), and decisions' 404 made every sync fail."""
    store = Store.open(database_url)
    try:
        with served("2026-08") as (sim, client):
            report = sync_once(store, client, window=WINDOW, now=NOW)
            assert report.errors == []
            assert report.outcomes["decisions"].unavailable
            start = store.sync_state("completions")["backfill_from"]  # type: ignore[index]
            for source in ("completions", "web_search_calls"):
                assert store.sync_state(source)["backfill_complete"]  # type: ignore[index]
            assert _tokens(store, "completions", start, NOW + 3600) == _truth(
                sim.org, "completions", start, NOW
            )
            sources = store.usage_totals(start, NOW + 3600, ["api_source"], sources=["completions"])
            assert [r["api_source"] for r in sources] == [""]  # counted without it
            assert _notes(store) == {
                ("completions", "refused_dimension", "api_source"),
                ("web_search_calls", "refused_dimension", "api_source"),
                ("decisions", "unavailable", ""),
            }
            assert not any(s["last_error"] for s in store.sync_states())

            # Within the day: neither the refused dimension nor the missing source is asked for.
            refused_before = sum(1 for _, _, status in sim.log if status in (400, 404))
            assert sync_once(store, client, window=WINDOW, now=NOW + 600).errors == []
            assert sync_recent(store, client, now=NOW + 660).errors == []
            assert sum(1 for _, _, status in sim.log if status in (400, 404)) == refused_before
            assert not any("/usage/decisions" in path for _, path, _ in sim.log[-40:])
    finally:
        store.close()


def test_what_was_refused_is_asked_for_again_after_a_day(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        with served("2026-08") as (_sim, client):
            assert sync_once(store, client, window=WINDOW, now=NOW).errors == []
        later = NOW + RECHECK_SECONDS + 3600
        with served(simulator.CURRENT_API) as (sim, client):
            sim.org.clock = lambda: float(later)
            assert sync_once(store, client, window=WINDOW, now=later).errors == []
            assert _notes(store) == set()
            day = later - later % DAY
            sources = {
                r["api_source"]
                for r in store.usage_totals(day, later, ["api_source"], sources=["completions"])
            }
            assert sources >= {"agents_api", "unlabeled"}  # grouped by it again
            decisions = store.sync_state("decisions")
            assert decisions is not None
            assert decisions["backfill_complete"]
            assert _tokens(store, "decisions", decisions["backfill_from"], later) == _truth(
                sim.org, "decisions", decisions["backfill_from"], later
            )
    finally:
        store.close()


def test_a_new_field_is_ignored_and_noted_once(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(database_url)
    try:
        with served("2027-01") as (sim, client), caplog.at_level(logging.INFO):
            assert sync_once(store, client, window=WINDOW, now=NOW).errors == []
            assert sync_once(store, client, window=WINDOW, now=NOW + 600).errors == []
            start = store.sync_state("completions")["backfill_from"]  # type: ignore[index]
            assert _tokens(store, "completions", start, NOW + 3600) == _truth(
                sim.org, "completions", start, NOW
            )
        noted = [r for r in caplog.records if "output_reasoning_tokens" in r.getMessage()]
        assert len(noted) == len(SOURCES)  # once per source, not again on the second sync
        assert ("completions", "new_field", "output_reasoning_tokens") in _notes(store)
    finally:
        store.close()


def test_health_says_what_the_api_refused_as_a_warning_not_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    options = {"api_version": "2026-08"}
    with live_app(url, tmp_path, simulator_options=options) as live:
        health = httpx2.get(live.url + "/api/health").json()
    assert health["status"] == "ok"
    assert health["upstream_error"] is None
    assert (
        "OpenAI did not accept api_source for completions; counting without it (asked again daily)"
    ) in health["upstream_notes"]
    assert (
        "decisions: not available for this organization (asked again daily)"
        in (health["upstream_notes"])
    )
    decisions = next(s for s in health["sync"] if s["source"] == "decisions")
    assert decisions["last_error"] is None
    assert decisions["notes"] == [
        "decisions: not available for this organization (asked again daily)"
    ]


def _health_during_and_after_a_429(
    tmp_path: Path, *, workers: int
) -> tuple[dict[str, object], dict[str, object]]:
    """``workers`` apps on one database, the first one's client syncing: its next call meets a
    429 and waits in its retry. The last app's /api/health while it waits, then after."""
    import threading

    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    waiting, release = threading.Event(), threading.Event()

    def sleep(_seconds: float) -> None:
        waiting.set()
        release.wait(30)

    sim = simulator.build(seed=7, days=2, clock=lambda: NOW)
    with BackgroundServer(sim) as upstream, contextlib.ExitStack() as stack:
        config = load_settings(
            database_url=f"sqlite:///{tmp_path / 'h.db'}",
            openai_admin_key=ADMIN_KEY,
            openai_base_url=upstream.url + "/v1",
            auth_mode="none",
        )
        clients = [
            stack.enter_context(
                AdminClient(
                    ADMIN_KEY,
                    upstream.url + "/v1",
                    retry=FAST_RETRY,
                    sleep=sleep if i == 0 else time.sleep,
                )
            )
            for i in range(workers)
        ]
        servers = [
            stack.enter_context(
                BackgroundServer(create_app(config, client=c, run_sync=False, clock=lambda: NOW))
            )
            for c in clients
        ]
        sim.faults.force("429")
        syncing = threading.Thread(target=clients[0].projects)
        syncing.start()
        assert waiting.wait(10)
        during = httpx2.get(servers[-1].url + "/api/health").json()
        release.set()
        syncing.join()
        after = httpx2.get(servers[-1].url + "/api/health").json()
    return during, after


def test_health_says_rate_limited_while_the_sync_waits_not_after_it_gave_up(
    tmp_path: Path,
) -> None:
    during, after = _health_during_and_after_a_429(tmp_path, workers=1)
    assert during["status"] == "degraded"
    assert during["upstream_error"] == "OpenAI is rate-limiting requests (429); retrying"
    assert after["upstream_error"] != during["upstream_error"]


def test_a_worker_that_does_not_sync_says_what_the_syncing_one_meets(tmp_path: Path) -> None:
    """With WORKERS=2 (or replicas) health may be answered by a process whose own client is
    idle: the syncing process's trouble is shared through the database."""
    during, after = _health_during_and_after_a_429(tmp_path, workers=2)
    assert during["upstream_error"] == "OpenAI is rate-limiting requests (429); retrying"
    assert during["status"] == "degraded"
    assert during["upstream_notes"] == []  # the trouble is no note about the API's shape
    assert after["upstream_error"] is None
    assert after["status"] == "ok"


def test_a_failed_names_refresh_reaches_health() -> None:
    from usage_tracker.sync import LoopStatus, SyncReport, guarded

    status = LoopStatus()
    guarded(lambda: SyncReport(names_error="OpenAI's API is unavailable"), status)
    assert status.error == (
        "Names of keys, users and projects were not refreshed: OpenAI's API is unavailable"
    )
    guarded(SyncReport, status)
    assert status.error is None

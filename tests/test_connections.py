"""Several organizations in one tracker: each connection synced on its own and exact, one
failing never stopping the others, a connection as a dimension and a filter of the summary, the
upgrade that assigns every stored row to ``openai``, and CONNECTIONS_FILE's errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser
from sqlalchemy import select

from usage_tracker import simulator
from usage_tracker.providers.connections import load_connections
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.reports import load_names, summary
from usage_tracker.settings import SettingsError, load_settings
from usage_tracker.store import Store, schema
from usage_tracker.sync import Feed, SyncWindow, sync_each, sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW
from .test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture
from .test_sync import assert_store_matches_truth

DAY = 86400
STAGING_KEY = "sk-admin-staging-simulated"


@pytest.fixture
def two_orgs() -> Iterator[dict[str, tuple[simulator.Simulator, str]]]:
    """Two simulated OpenAI organizations (different people, keys and projects), each served
    with its own admin key: name -> (simulator, base URL)."""
    prod = simulator.build(seed=7, days=20, clock=lambda: NOW)
    staging = simulator.build(seed=11, days=20, clock=lambda: NOW, admin_key=STAGING_KEY)
    with BackgroundServer(prod) as a, BackgroundServer(staging) as b:
        yield {"prod": (prod, a.url + "/v1"), "staging": (staging, b.url + "/v1")}


def _feeds(orgs: dict[str, tuple[simulator.Simulator, str]], keys: dict[str, str]) -> list[Feed]:
    return [
        Feed(name, AdminClient(keys[name], url, retry=FAST_RETRY), SyncWindow(backfill_days=10))
        for name, (_sim, url) in orgs.items()
    ]


def _sync_all(store: Store, feeds: list[Feed]) -> Any:
    return sync_each(
        store,
        feeds,
        lambda f: sync_once(store, f.client, window=f.window, connection=f.connection, now=NOW),
    )


def _token_truth(org: simulator.Organization, start: int, end: int) -> tuple[int, int]:
    """(input + output tokens, model requests) of every usage source over [start, end)."""
    tokens = requests = 0
    for name in SOURCES:
        for metrics in org.truth(name, start, end, ()).values():
            tokens += metrics.get("input_tokens", 0) + metrics.get("output_tokens", 0)
            requests += metrics.get("num_model_requests", 0)
    return tokens, requests


def test_two_organizations_sync_into_one_store_each_exact_and_summed(
    database_url: str, two_orgs: dict[str, tuple[simulator.Simulator, str]]
) -> None:
    """Every source by every dimension and every cost, per connection, equals that
    organization's truth; the summary splits the totals per connection and provider, and its
    keys each name their connection; a filter by connection reads as that organization alone."""
    store = Store.open(database_url)
    feeds = _feeds(two_orgs, {"prod": ADMIN_KEY, "staging": STAGING_KEY})
    report = _sync_all(store, feeds)
    assert report.errors == []
    assert set(report.outcomes) == {f"{n}/{s}" for n in two_orgs for s in [*SOURCES, "costs"]}
    start = NOW - NOW % DAY - 10 * DAY
    for name, (sim, _url) in two_orgs.items():
        assert_store_matches_truth(store, sim.org, start, NOW, connection=name)
    assert store.connections() == {"prod": "openai", "staging": "openai"}
    assert {(s["connection"], s["source"]) for s in store.sync_states()} == {
        (n, s) for n in two_orgs for s in [*SOURCES, "costs"]
    }

    names = load_names(store)
    end = NOW - NOW % 3600 + 3600
    every = summary(store, names, start, end)
    truth = {n: _token_truth(sim.org, start, end) for n, (sim, _u) in two_orgs.items()}
    by_connection = {r["connection"]: r for r in every["by"]["connection"]}
    assert {n: (r["tokens"], r["num_model_requests"]) for n, r in by_connection.items()} == truth
    assert every["totals"]["tokens"] == sum(t for t, _r in truth.values())
    [openai] = every["by"]["provider"]
    assert openai["provider"] == "openai"
    assert openai["tokens"] == every["totals"]["tokens"]
    assert openai["billed_cost"] == every["billed_usd"]
    billed = {
        n: sum(sim.org.cost_truth(start, end, ()).values(), Decimal(0))
        for n, (sim, _u) in two_orgs.items()
    }
    assert {n: r["billed_cost"] for n, r in by_connection.items()} == billed

    keys_of = {n: {k.id for k in sim.org.keys} for n, (sim, _u) in two_orgs.items()}
    for row in every["by"]["api_key"]:
        if row["api_key"]:
            assert row["api_key"] in keys_of[row["connection"]]
            assert row["provider"] == "openai"

    staging = summary(store, names, start, end, where={"connection": ["staging"]})
    assert staging["totals"]["tokens"] == truth["staging"][0]
    assert staging["billed_usd"] == billed["staging"]
    assert [r["connection"] for r in staging["by"]["connection"]] == ["staging"]
    for feed in feeds:
        feed.client.close()
    store.close()


def test_a_connection_whose_key_is_refused_leaves_the_others_synced(
    database_url: str, two_orgs: dict[str, tuple[simulator.Simulator, str]]
) -> None:
    """staging's key is revoked: its every source records the refusal, prod syncs exactly
    all the same, and prod's stored rows stay when staging fails again."""
    store = Store.open(database_url)
    feeds = _feeds(two_orgs, {"prod": ADMIN_KEY, "staging": "sk-admin-revoked"})
    report = _sync_all(store, feeds)
    failed = {key for key, o in report.outcomes.items() if o.error}
    assert failed == {f"staging/{s}" for s in [*SOURCES, "costs"]}
    assert report.names_error is not None
    assert report.names_error.startswith("staging: ")
    start = NOW - NOW % DAY - 10 * DAY
    prod = two_orgs["prod"][0]
    assert_store_matches_truth(store, prod.org, start, NOW, connection="prod")
    states = {(s["connection"], s["source"]): s for s in store.sync_states()}
    assert all(states["prod", s]["last_error"] is None for s in SOURCES)
    assert all(states["staging", s]["last_error"] for s in SOURCES)
    _sync_all(store, feeds)  # staging fails again: prod's rows stay exact
    assert_store_matches_truth(store, prod.org, start, NOW, connection="prod")
    for feed in feeds:
        feed.client.close()
    store.close()


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a database of 0011 had (the limits, read again by the next
    sync, came after it)."""
    later = ("connections", "limits")
    tables = [t for t in schema.metadata.sorted_tables if t.name not in later]
    with store.engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in tables}


def test_upgrading_a_populated_database_gives_every_row_to_the_connection_openai(
    database_url: str, sim_url: str, sim: simulator.Simulator
) -> None:
    """A database synced before connections existed (0011) upgrades with every row of every
    table, every rollup and every total exactly as the current version stores them: each row
    belongs to ``openai``, the connection of OPENAI_ADMIN_KEY."""
    from alembic import command
    from alembic.config import Config

    from usage_tracker.store.db import MIGRATIONS

    store = Store.open(database_url)
    with AdminClient(ADMIN_KEY, sim_url, retry=FAST_RETRY) as client:
        assert sync_once(store, client, now=NOW, window=SyncWindow(backfill_days=20)).errors == []
    start, end = NOW - NOW % DAY - 20 * DAY, NOW - NOW % 3600 + 3600
    before = _dump(store)
    totals = summary(store, load_names(store), start, end)
    assert sum(len(rows) for rows in before.values()) > 10_000
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0011")
    with store.engine.connect() as conn:
        columns = conn.execute(select(schema.usage.c.source).limit(1)).keys()
        assert "connection" not in columns
        # of the blocks the head keeps (0022 put back those of 2 to 256 days)
        kept = "SELECT COUNT(*) FROM usage_folded WHERE hours IN (6, 24, 168)"
        old = conn.exec_driver_sql(kept).scalar_one()
    assert old < len(before["usage_folded"])  # the per-connection rollup went
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert _dump(store) == before
    assert store.connections() == {"openai": "openai"}
    assert summary(store, load_names(store), start, end) == totals
    assert_store_matches_truth(store, sim.org, start, NOW, connection="openai")
    store.close()


@contextmanager
def _two_connection_app(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The app (no sign-in) of OPENAI_ADMIN_KEY's organization (``openai``) and a
    CONNECTIONS_FILE one (``staging``), both synced; yields its URL."""
    from usage_tracker.web import create_app

    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = Store.open(database_url)
    feeds = _feeds(two_orgs, {"prod": ADMIN_KEY, "staging": STAGING_KEY})
    feeds[0] = Feed("openai", feeds[0].client, feeds[0].window)
    assert _sync_all(store, feeds).errors == []
    store.close()
    for feed in feeds:
        feed.client.close()
    (tmp_path / "connections.yaml").write_text(
        "connections:\n"
        "  - name: staging\n"
        "    provider: openai\n"
        "    key_env: STAGING_ADMIN_KEY\n"
        f"    base_url: {two_orgs['staging'][1]}\n"
    )
    monkeypatch.setenv("STAGING_ADMIN_KEY", STAGING_KEY)
    settings = load_settings(
        database_url=database_url,
        openai_admin_key=ADMIN_KEY,
        openai_base_url=two_orgs["prod"][1],
        connections_file=tmp_path / "connections.yaml",
        key_mappings_file=tmp_path / "api_key_mappings.json",
        auth_mode="none",
    )
    app = create_app(settings, run_sync=False, clock=lambda: NOW)
    with BackgroundServer(app) as server:
        yield server.url


def test_the_summary_api_splits_and_narrows_by_connection_and_provider(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app of OPENAI_ADMIN_KEY plus a CONNECTIONS_FILE entry: /api/summary has both
    connections; ?connection= and ?provider= narrow it; an unknown connection is a 404 that
    names the known ones; /api/usage reads one organization; health has a line per
    connection."""
    start = NOW - NOW % DAY - 10 * DAY
    with (
        _two_connection_app(tmp_path, two_orgs, monkeypatch) as url,
        httpx2.Client(base_url=url) as http,
    ):
        params = {"start_time": start, "end_time": NOW}
        every = http.get("/api/summary", params=params).json()
        rows = {r["connection"]: r["tokens"] for r in every["by"]["connection"]}
        assert set(rows) == {"openai", "staging"}
        assert sum(rows.values()) == every["totals"]["tokens"]
        only = http.get("/api/summary", params={**params, "connection": "staging"}).json()
        assert only["totals"]["tokens"] == rows["staging"]
        assert {r["connection"] for r in only["by"]["api_key"] if r["api_key"]} == {"staging"}
        openai = http.get("/api/summary", params={**params, "provider": "openai"}).json()
        assert openai["totals"] == every["totals"]
        none = http.get("/api/summary", params={**params, "provider": "anthropic"}).json()
        assert none["totals"]["tokens"] == 0
        unknown = http.get("/api/summary", params={**params, "connection": "nope"})
        assert unknown.status_code == 404
        error = unknown.json()["error"]
        assert error["param"] == "connection"
        assert "known: openai, staging" in error["message"]
        day = NOW - NOW % DAY - DAY
        for name, (sim, _url) in [("openai", two_orgs["prod"]), ("staging", two_orgs["staging"])]:
            query = {"start_time": day, "end_time": day + DAY, "bucket_width": "1d"}
            if name != "openai":  # the first OpenAI connection unless told which
                query["connection"] = name
            page = http.get("/api/usage", params=query).json()
            got = sum(r["input_tokens"] for b in page["data"] for r in b["results"])
            truth = sim.org.truth("completions", day, day + DAY, ())
            assert got == sum(m["input_tokens"] for m in truth.values()) > 0
        wrong = http.get("/api/usage", params={"start_time": day, "connection": "nope"})
        assert wrong.status_code == 404
        assert wrong.json()["error"]["param"] == "connection"
        health = http.get("/api/health").json()
        assert [(c["name"], c["error"]) for c in health["connections"]] == [
            ("openai", None),
            ("staging", None),
        ]
        assert {s["connection"] for s in health["sync"]} == {"openai", "staging"}
        assert STAGING_KEY not in http.get("/api/health").text


# -- CONNECTIONS_FILE -------------------------------------------------------------------------


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None, **settings: Any) -> Any:
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    config = load_settings(connections_file=path, **settings)
    return load_connections(config, env or {})


def test_a_connections_file_adds_to_the_key_of_openai_admin_key(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-admin-from-a-file\n")
    found = _load(
        tmp_path,
        "connections:\n"
        "  - {name: staging, provider: openai, key_env: STAGING, usage_tier: '3-5'}\n"
        f"  - {{name: acquired, provider: openai, key_file: {tmp_path / 'key'},"
        " backfill_days: 30, sharing_projects: [proj_a]}\n",
        {"STAGING": "sk-admin-staging"},
        openai_admin_key="sk-admin-main",
        usage_tier="1-2",
        backfill_days=90,
    )
    assert [(c.name, c.provider, c.usage_tier, c.backfill_days) for c in found] == [
        ("openai", "openai", "1-2", 90),
        ("staging", "openai", "3-5", 90),
        ("acquired", "openai", "1-2", 30),
    ]
    assert [c.key.get_secret_value() for c in found] == [
        "sk-admin-main",
        "sk-admin-staging",
        "sk-admin-from-a-file",
    ]
    assert found[2].sharing_projects == ("proj_a",)
    assert "sk-admin" not in repr(found)


@pytest.mark.parametrize(
    ("text", "at", "says"),
    [
        (
            "connections:\n  - {name: a, provider: openai, key_env: UNSET}\n",
            "UNSET",
            "connections.0.key_env: the environment variable UNSET is not set",
        ),
        (
            "connections:\n  - name: b\n    provider: azure\n    key_env: K\n",
            "azure",
            "provider 'azure' is not one this version reads",
        ),
        (
            "connections:\n  - {name: c, provider: openai}\n",
            "{name: c",
            "exactly one of key_env",
        ),
        (
            "connections:\n  - {name: c, provider: openai, key: sk-admin-x}\n",
            "sk-admin-x",
            "Extra inputs are not permitted",
        ),
        (
            "connections:\n  - {name: Prod Org, provider: openai, key_env: K}\n",
            "Prod Org",
            "lower-case letters",
        ),
        (
            "connections:\n  - {name: openai, provider: openai, key_env: K}\n",
            "openai, provider",
            "taken by the connection of OPENAI_ADMIN_KEY",
        ),
        (
            "connections:\n  - {name: a, provider: openai, key_env: K\n",
            None,
            "",
        ),
    ],
)
def test_a_connections_file_that_cannot_be_used_is_named_with_line_and_column(
    tmp_path: Path, text: str, at: str | None, says: str
) -> None:
    """The error names the file, and the line and column where ``at`` starts (the end of the
    text for a document cut short)."""
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, text, {"K": "sk-admin-k"}, openai_admin_key="sk-admin-main")
    message = str(caught.value)
    offset = len(text) if at is None else text.index(at)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    where = f"line {line}, column {column}"
    assert message.startswith(f"CONNECTIONS_FILE {tmp_path / 'connections.yaml'}, {where}: ")
    assert says in message
    assert "sk-admin-" not in message


@pytest.mark.slow
def test_sigkill_during_a_two_organization_backfill_loses_and_mixes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """``sync --once`` over OPENAI_ADMIN_KEY's organization and a CONNECTIONS_FILE one, killed
    at random points: the run that finishes leaves each organization exactly its own."""
    import os
    import random
    import subprocess
    import sys
    import time

    from .test_sync import _kill_backfill_at_random_points

    t0 = int(time.time())
    faults = simulator.Faults(latency_seconds=0.03)
    prod = simulator.build(seed=9, days=40, clock=lambda: t0, faults=faults)
    staging = simulator.build(
        seed=12, days=40, clock=lambda: t0, faults=faults, admin_key=STAGING_KEY
    )
    with BackgroundServer(prod) as a, BackgroundServer(staging) as b:
        (tmp_path / "connections.json").write_text(
            '{"connections": [{"name": "staging", "provider": "openai", '
            f'"key_file": "{tmp_path / "staging-key"}", "base_url": "{b.url}/v1"}}]}}'
        )
        (tmp_path / "staging-key").write_text(STAGING_KEY)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "OPENAI_BASE_URL": a.url + "/v1",
            "OPENAI_ADMIN_KEY": ADMIN_KEY,
            "CONNECTIONS_FILE": str(tmp_path / "connections.json"),
            "BACKFILL_DAYS": "40",
        }
        kills = _kill_backfill_at_random_points(env, 5, random.Random(t0))
        assert kills >= 3, "the backfill finished before three kills; raise the latency"
        store = Store.open(database_url)
        done = [s for s in store.sync_states() if s["backfill_complete"]]
        assert len(done) < 2 * (len(SOURCES) + 1), "the kills did not interrupt the backfill"
        finished = subprocess.run(
            [sys.executable, "-m", "usage_tracker", "sync", "--once"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
        assert finished.returncode == 0, finished.stderr
        assert STAGING_KEY not in finished.stdout + finished.stderr
    states = store.sync_states()
    assert all(s["backfill_complete"] for s in states)
    assert {s["connection"] for s in states} == {"openai", "staging"}
    backfill_from = min(s["backfill_from"] for s in states)
    assert_store_matches_truth(store, prod.org, backfill_from, t0 + 1, connection="openai")
    assert_store_matches_truth(store, staging.org, backfill_from, t0 + 1, connection="staging")
    store.close()


def test_the_dashboard_of_two_organizations_reads_and_fits_in_both_themes(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,  # noqa: F811
) -> None:
    """The Connections table lists both organizations with their tokens, each API key names
    its connection, a click narrows the page to one (and says so), and the page meets the
    contrast and fit checks at 1440 and 360 px, dark and light (screenshots in
    test-artifacts/pages/)."""
    from .test_pages_browser import CONTRAST, _cut, new_page

    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    with _two_connection_app(tmp_path, two_orgs, monkeypatch) as url:
        every = httpx2.get(url + "/api/summary").json()
        tokens = {r["connection"]: r["tokens"] for r in every["by"]["connection"]}
        for scheme in ("dark", "light"):
            for width in (1440, 360):
                watched = new_page(browser, width, scheme)
                page = watched.page
                page.goto(url + "/?range=today")
                where = f"{width} {scheme}"
                table = page.locator("#table-connection")
                shown = {
                    row.locator("th").inner_text().strip(): row.locator("td").first.inner_text()
                    for row in table.locator("tbody tr").all()
                }
                assert shown == {n: f"{t:,}" for n, t in tokens.items()}, where
                keys = page.locator("#table-api_key .connection-of").all_inner_texts()
                assert set(keys) <= {"· openai", "· staging"}
                assert keys, where
                assert page.evaluate(CONTRAST) == [], where
                assert _cut(page) == [], where
                page.screenshot(
                    path=shots / f"dashboard-connections-{width}-{scheme}.png", full_page=True
                )
                table.get_by_role("link", name="staging").click()
                page.wait_for_load_state("networkidle")
                assert "connection: staging" in page.locator(".filter").inner_text()
                assert page.locator("#table-connection").count() == 0 or (
                    page.locator("#table-connection tbody tr").count() == 1
                )
                assert _cut(page) == [], where
                assert watched.errors == [], where
                page.context.close()


def test_each_openai_organization_has_pools_of_its_own(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/api/tiers is the first organization's pools, ?connection= another's (its own usage
    only); the pool alerts fire for each organization, the first one's under the keys they had
    before connections, the other's named."""
    from usage_tracker.alerts.evaluate import Inputs, pool_alerts
    from usage_tracker.alerts.rules import DEFAULT_RULES
    from usage_tracker.providers.openai.pools import load_pool_table
    from usage_tracker.reports import pool_usage

    with _two_connection_app(tmp_path, two_orgs, monkeypatch) as url:
        first = httpx2.get(url + "/api/tiers").json()
        staging = httpx2.get(url + "/api/tiers", params={"connection": "staging"}).json()
        unknown = httpx2.get(url + "/api/tiers", params={"connection": "nope"})
    assert (first["connection"], staging["connection"]) == ("openai", "staging")
    assert first["organizations"] == ["openai", "staging"]
    assert unknown.status_code == 404
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    names, table = load_names(store), load_pool_table()
    for name, served in (("openai", first), ("staging", staging)):
        truth = pool_usage(store, names, table, NOW, connection=name)
        assert {p: v["used"] for p, v in served["pools"].items()} == {
            p: s.used for p, s in truth.pools.items()
        }
    assert first["pools"]["large"]["used"] != staging["pools"]["large"]["used"]
    inputs = Inputs(
        store=store,
        names=names,
        pools=table,
        usage_tier="1-2",
        sharing_projects=(),
        base_url="http://tracker",
        connection="openai",
        more_pools=(("staging", "1-2", ()),),
    )
    keys = {f.dedupe_key for f in pool_alerts(DEFAULT_RULES, inputs, NOW)}
    day = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    for name, served in (("openai", first), ("staging", staging)):
        prefix = "pool:" if name == "openai" else "pool:staging:"
        for pool, figures in served["pools"].items():
            for threshold in (50, 80, 100):
                fired = f"{prefix}{pool}:{threshold}:{day}" in keys
                assert fired == (figures["percent"] >= threshold), (name, pool, threshold)
    assert any(k.startswith("pool:staging:") for k in keys)
    store.close()


def test_the_selector_narrows_the_dashboard_to_one_organization_and_its_pools(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,  # noqa: F811
) -> None:
    """Across every organization the page shows each OpenAI organization's pools apart (the
    served figures of /api/tiers); picking one in the selector narrows the totals to
    /api/summary?connection= and the pools to its own, and a change of range keeps it."""
    from .test_pages_browser import new_page

    with _two_connection_app(tmp_path, two_orgs, monkeypatch) as url:
        tiers = {
            name: httpx2.get(url + "/api/tiers", params={"connection": name}).json()
            for name in ("openai", "staging")
        }
        watched = new_page(browser, 1440, "dark")
        page = watched.page
        page.goto(url + "/?range=today")
        label = page.locator(".range-label")
        shown = {
            "start_time": label.get_attribute("data-start"),
            "end_time": label.get_attribute("data-end"),
        }
        every = httpx2.get(url + "/api/summary", params=shown).json()
        staging = httpx2.get(url + "/api/summary", params={**shown, "connection": "staging"}).json()

        def pools_shown() -> dict[str, dict[str, int]]:
            return {
                section.get_attribute("data-connection") or "": {
                    pool.get_attribute("data-pool") or "": int(
                        pool.locator(".pool-used").get_attribute("data-value") or -1
                    )
                    for pool in section.locator("[data-pool]").all()
                }
                for section in page.locator("section.pools").all()
            }

        served = {n: {p: v["used"] for p, v in t["pools"].items()} for n, t in tiers.items()}
        assert pools_shown() == served
        assert served["openai"] != served["staging"]
        kpi = page.locator("#kpi-input").get_attribute("data-value")
        assert int(kpi or -1) == every["totals"]["input_tokens"]
        providers = page.locator("#pick-provider option").all_inner_texts()
        assert providers == ["All", "OpenAI"]
        page.select_option("#pick-connection", "staging")
        page.wait_for_url("**connection=staging**")
        assert "provider=" not in page.url  # "All" is left out, not sent empty
        assert "connection: staging" in page.locator(".context").inner_text()
        assert pools_shown() == {"staging": served["staging"]}
        kpi = page.locator("#kpi-input").get_attribute("data-value")
        assert int(kpi or -1) == staging["totals"]["input_tokens"]
        assert staging["totals"]["input_tokens"] < every["totals"]["input_tokens"]
        page.get_by_role("link", name="Last 7 days").click()
        page.wait_for_load_state("networkidle")
        assert "connection=staging" in page.url
        assert page.locator("#pick-connection").input_value() == "staging"
        empty = httpx2.get(url + "/", params={"connection": "", "provider": ""})
        assert empty.status_code == 200  # "All" sent without JavaScript
        wrong = httpx2.get(url + "/", params={"provider": "acme"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["param"] == "provider"
        assert watched.errors == []
        page.context.close()


def test_reconciliation_forecast_exports_and_people_narrow_to_a_connection(
    tmp_path: Path,
    two_orgs: dict[str, tuple[simulator.Simulator, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """?connection= narrows the reconciliation (its bill is that organization's Costs API),
    the forecast (the two organizations' add up to the whole), the exports (every key row of
    one connection) as it narrows the summary; an unknown one is a 404 on each; the People
    page names each key's connection."""
    start = NOW - NOW % DAY - 10 * DAY
    end = NOW - NOW % DAY + DAY
    with (
        _two_connection_app(tmp_path, two_orgs, monkeypatch) as url,
        httpx2.Client(base_url=url) as http,
    ):
        params = {"start_time": start, "end_time": end}
        billed = {}
        for name in ("openai", "staging"):
            summary = http.get("/api/summary", params={**params, "connection": name}).json()
            report = http.get("/api/reconciliation", params={**params, "connection": name}).json()
            assert Decimal(str(report["totals"]["billed"])) == Decimal(str(summary["billed_usd"]))
            billed[name] = Decimal(str(report["totals"]["billed"]))
        whole = http.get("/api/reconciliation", params=params).json()
        assert Decimal(str(whole["totals"]["billed"])) == billed["openai"] + billed["staging"]
        assert billed["openai"] != billed["staging"]
        forecasts = {
            name: http.get("/api/forecast", params={"connection": name}).json()["organization"]
            for name in ("openai", "staging")
        }
        whole_forecast = http.get("/api/forecast").json()
        every = whole_forecast["organization"]
        before = sum(Decimal(str(f["before_today"])) for f in forecasts.values())
        assert before == Decimal(str(every["before_today"]))
        # Each run rate is rounded to the cent, then times the days left.
        rounding = Decimal("0.01") * (whole_forecast["days_left"] + 1)
        parts = sum(Decimal(str(f["projected_month_end"])) for f in forecasts.values())
        assert abs(parts - Decimal(str(every["projected_month_end"]))) <= rounding
        exported = http.get(
            "/api/export",
            params={**params, "by": "key", "format": "json", "connection": "staging"},
        ).json()
        keys = [r for r in exported if not str(r.get("key", "")).startswith("TOTAL")]
        assert keys
        assert {r["connection"] for r in keys} == {"staging"}
        for path in ("/api/reconciliation", "/api/forecast", "/api/export"):
            assert http.get(path, params={"connection": "nope"}).status_code == 404, path
        people = http.get("/people").text
        assert "(staging)" in people
        assert "(openai)" in people
    day = dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()
    last = dt.datetime.fromtimestamp(end - 1, dt.UTC).date().isoformat()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    command = [sys.executable, "-m", "usage_tracker", "report", "--since", day, "--until", last]
    shown = subprocess.run(
        [*command, "--by", "key", "--format", "json", "--connection", "staging"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    keys = [r for r in json.loads(shown.stdout) if not str(r["key"]).startswith("TOTAL")]
    assert keys
    assert {r["connection"] for r in keys} == {"staging"}
    wrong = subprocess.run(
        [*command, "--connection", "nope"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 2
    assert "no connection named 'nope'" in wrong.stderr

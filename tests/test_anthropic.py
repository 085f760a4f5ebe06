"""Anthropic beside OpenAI: the Anthropic connection read through the pinned SDK against the
simulated organization (the same company as the OpenAI simulator), exact per key, workspace and
model, its bill to the cent, every request and answer valid against the SDK's own types, and
both providers in one summary, each person's usage and cost across them."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anthropic.types.beta.organization import (
    BetaAPIKey,
    BetaOrganizationUser,
    BetaWorkspace,
    analytics,
    api_key_list_params,
    user_list_params,
    workspace_list_params,
)
from anthropic.types.beta.organization.analytics import cost_list_params, usage_list_params
from playwright.sync_api import Browser, Page

from usage_tracker import simulator
from usage_tracker.providers.anthropic import AnthropicClient
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.reports import load_names, summary
from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY, AnthropicSimulator
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW
from .test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

DAY, HOUR = 86400, 3600
DAYS = 10


@pytest.fixture
def company() -> Iterator[tuple[simulator.Simulator, AnthropicSimulator, str, str]]:
    """One synthetic company served as an OpenAI organization and as an Anthropic one."""
    openai_sim = simulator.build(seed=7, days=30, clock=lambda: NOW)
    anthropic_sim = AnthropicSimulator(openai_sim.org)
    with BackgroundServer(openai_sim) as a, BackgroundServer(anthropic_sim) as b:
        yield openai_sim, anthropic_sim, a.url + "/v1", b.url


def _sync_anthropic(store: Store, url: str, key: str = DEFAULT_ADMIN_KEY) -> Any:
    with AnthropicClient(key, url, max_retries=0) as client:
        return sync_once(
            store,
            client,
            now=NOW,
            window=SyncWindow(backfill_days=DAYS),
            connection="anthropic",
        )


def test_an_anthropic_organization_is_stored_exactly(
    database_url: str, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    """Tokens (every input token, cache reads, cache writes, output) and requests per key,
    workspace and model equal the organization's; the bill equals its cost report to the
    cent; keys belong to their people (by email); names of keys, users and workspaces are
    stored under the connection."""
    _openai, sim, _url, url = company
    store = Store.open(database_url)
    report = _sync_anthropic(store, url)
    assert report.errors == []
    assert set(report.outcomes) == {"messages", "costs"}
    start, end = NOW - NOW % DAY - DAYS * DAY, NOW - NOW % HOUR + HOUR
    metrics = ["input_tokens", "input_cached_tokens", "input_cache_write_tokens"]
    metrics += ["output_tokens", "num_model_requests"]
    columns = ["api_key_id", "project_id", "model"]
    rows = store.usage_totals(start, end, columns, metrics=metrics, sources=["messages"])
    got = {tuple(r[c] for c in columns): {m: r[m] for m in metrics} for r in rows}
    truth = sim.company.truth(start, end, ("api_key_id", "workspace_id", "model"))
    assert got == {k: v for k, v in truth.items() if any(v.values())}
    assert sum(v["input_cache_write_tokens"] for v in got.values()) > 0
    billed = store.cost_totals(start - start % DAY, NOW - NOW % DAY + DAY)
    assert billed[0]["amount"] == sim.company.cost_truth(start, NOW - NOW % DAY + DAY)
    keys = {k["id"]: k for k in store.api_keys()}
    # A user's key is theirs (its principal); a service account's has no person's email.
    emails = {k.name: k.owner_email if k.owner_type == "user" else None for k in sim.org.keys}
    assert {k["name"]: k["owner_email"] for k in keys.values()} == emails
    assert {k["connection"] for k in keys.values()} == {"anthropic"}
    assert {p["connection"] for p in store.projects()} == {"anthropic"}
    assert store.connections() == {"anthropic": "anthropic"}
    store.close()


def _literal_values(alias: Any) -> set[str]:
    return set(typing.get_args(alias))


def test_every_request_and_answer_is_valid_against_the_pinned_sdk_types(
    tmp_path: Any, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    """Each request the client made names only parameters the SDK's params types have, with
    values their literals allow, and the beta header the analytics endpoints need; each answer
    the simulator gave validates, field for field, as the SDK's own models."""
    _openai, sim, _url, url = company
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")
    assert _sync_anthropic(store, url).errors == []
    store.close()
    params = {
        "/v1/organizations/analytics/usage": (usage_list_params.UsageListParams, True),
        "/v1/organizations/analytics/cost": (cost_list_params.CostListParams, True),
        "/v1/organizations/api_keys": (api_key_list_params.APIKeyListParams, False),
        "/v1/organizations/users": (user_list_params.UserListParams, False),
        "/v1/organizations/workspaces": (workspace_list_params.WorkspaceListParams, False),
    }
    models = {
        "/v1/organizations/analytics/usage": analytics.BetaAnalyticsUsageItem,
        "/v1/organizations/analytics/cost": analytics.BetaAnalyticsCostItem,
        "/v1/organizations/api_keys": BetaAPIKey,
        "/v1/organizations/users": BetaOrganizationUser,
        "/v1/organizations/workspaces": BetaWorkspace,
    }
    groups = {
        "/v1/organizations/analytics/usage": _literal_values(analytics.BetaAnalyticsUsageGroupBy),
        "/v1/organizations/analytics/cost": _literal_values(analytics.BetaAnalyticsCostGroupBy),
    }
    assert {path for path, *_ in sim.log} == set(params)
    for path, query, beta, status, body in sim.log:
        assert status == 200, (path, body)
        typed, needs_beta = params[path]
        assert set(query) <= set(typed.__annotations__), (path, query)
        if needs_beta:
            assert beta is not None
            assert "analytics-usage-cost-2026-08-24" in beta
            assert set(query["group_by"]) <= groups[path]
            assert query["time_bucket_width"][0] in {"1h", "1d"}
            assert 1 <= int(query["limit"][0]) <= 1000
        assert body["data"], path
        for item in body["data"]:
            models[path].model_validate(item, strict=False)


def test_openai_and_anthropic_add_up_per_provider_and_per_person(
    database_url: str, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    """Both providers of one company in one store: by.provider has each provider's exact
    totals, every key row names its provider, and a person's tokens and bill are their OpenAI
    keys' plus their Anthropic keys'."""
    _openai, sim, openai_url, url = company
    store = Store.open(database_url)
    with AdminClient(ADMIN_KEY, openai_url, retry=FAST_RETRY) as client:
        window = SyncWindow(backfill_days=DAYS)
        assert sync_once(store, client, now=NOW, window=window).errors == []
    assert _sync_anthropic(store, url).errors == []
    start, end = NOW - NOW % DAY - DAYS * DAY, NOW - NOW % HOUR + HOUR
    names = load_names(store)
    every = summary(store, names, start, end)
    providers = {r["provider"]: r for r in every["by"]["provider"]}
    assert set(providers) == {"openai", "anthropic"}
    claude = sim.company.truth(start, end)[()]
    assert providers["anthropic"]["input_tokens"] == claude["input_tokens"]
    assert providers["anthropic"]["output_tokens"] == claude["output_tokens"]
    assert sum(r["tokens"] for r in providers.values()) == every["totals"]["tokens"]
    assert providers["anthropic"]["billed_cost"] == sim.company.cost_truth(
        start, NOW - NOW % DAY + DAY
    )
    assert sum(r["billed_cost"] for r in providers.values()) == every["billed_usd"]
    assert sum(r["billed_cost"] for r in every["by"]["person"]) == every["billed_usd"]
    for row in every["by"]["api_key"]:
        if row["api_key"]:
            assert row["provider"] == (
                "anthropic" if row["api_key"].startswith("apikey_") else "openai"
            )

    jane = next(k for k in sim.org.keys if k.owner_name == "Jane Smith")
    person = next(r for r in every["by"]["person"] if r["person"] == "Jane Smith")
    of_jane = [
        r
        for r in every["by"]["api_key"]
        if r["api_key"] and names.person(r["api_key"]) == "Jane Smith"
    ]
    assert {r["provider"] for r in of_jane} == {"openai", "anthropic"}, jane.name
    assert person["tokens"] == sum(r["tokens"] for r in of_jane)
    assert person["billed_cost"] == sum((r["billed_cost"] for r in of_jane), Decimal(0))
    store.close()


def test_a_refused_anthropic_key_is_said_for_every_source_without_the_key(
    tmp_path: Any, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    _openai, _sim, _url, url = company
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")
    wrong = "sk-ant-admin01-not-this-one"
    report = _sync_anthropic(store, url, key=wrong)
    assert set(report.outcomes) == {"messages", "costs"}
    assert all("Anthropic refused the admin key (401)" in o.error for o in report.outcomes.values())
    assert report.names_error is not None
    states = store.sync_states()
    assert {s["connection"] for s in states} == {"anthropic"}
    assert all(s["last_error"] and wrong not in s["last_error"] for s in states)
    store.close()


@contextmanager
def _both_providers_app(
    tmp_path: Path,
    company: tuple[simulator.Simulator, AnthropicSimulator, str, str],
    **extra: Any,
) -> Iterator[str]:
    """The app (no sign-in, unless ``extra`` settings say otherwise) of OPENAI_ADMIN_KEY and
    ANTHROPIC_ADMIN_KEY over one company, both synced; yields its URL."""
    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    _openai, _sim, openai_url, url = company
    database_url = f"sqlite:///{tmp_path / 'both.db'}"
    store = Store.open(database_url)
    with AdminClient(ADMIN_KEY, openai_url, retry=FAST_RETRY) as client:
        assert sync_once(store, client, now=NOW, window=SyncWindow(backfill_days=DAYS)).errors == []
    assert _sync_anthropic(store, url).errors == []
    store.close()
    if extra.get("auth_mode") == "password":
        from .test_auth import JANE, _add_account

        _add_account(database_url, JANE, "member")
    settings = load_settings(
        database_url=database_url,
        openai_admin_key=ADMIN_KEY,
        openai_base_url=openai_url,
        anthropic_admin_key=DEFAULT_ADMIN_KEY,
        anthropic_base_url=url,
        key_mappings_file=tmp_path / "api_key_mappings.json",
        **{"auth_mode": "none", **extra},
    )
    with BackgroundServer(create_app(settings, run_sync=False, clock=lambda: NOW)) as server:
        yield server.url


def test_the_dashboard_of_two_providers_reads_and_fits_in_both_themes(
    tmp_path: Path,
    company: tuple[simulator.Simulator, AnthropicSimulator, str, str],
    browser: Browser,  # noqa: F811
) -> None:
    """OpenAI and Anthropic on one dashboard: the Connections table has both with the tokens
    of /api/summary, a key's row names its connection, the Claude models are in the Models
    table priced (an estimate, not "—"), and the page meets the contrast and fit checks at
    1440 and 360 px, dark and light (screenshots in test-artifacts/pages/)."""
    from .test_pages_browser import CONTRAST, _cut, new_page

    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    with _both_providers_app(tmp_path, company) as url:
        every = httpx2.get(url + "/api/summary").json()
        tokens = {r["connection"]: r["tokens"] for r in every["by"]["connection"]}
        assert set(tokens) == {"openai", "anthropic"}
        claude = [r for r in every["by"]["model"] if (r["model"] or "").startswith("claude-")]
        assert claude
        assert all(r["estimated_cost"] is not None for r in claude if r["tokens"])
        health = httpx2.get(url + "/api/health").json()
        assert [(c["name"], c["provider"]) for c in health["connections"]] == [
            ("openai", "openai"),
            ("anthropic", "anthropic"),
        ]
        listed = [k for k in company[0].org.keys if k.deleted_at is None]
        limits_page = httpx2.get(url + "/limits").text  # Anthropic's: each key's status
        assert f'data-active="{len(listed)}" data-inactive="0"' in limits_page
        for scheme in ("dark", "light"):
            for width in (1440, 360):
                watched = new_page(browser, width, scheme)
                page = watched.page
                page.goto(url + "/?range=today")
                where = f"{width} {scheme}"
                rows = page.locator("#table-connection tbody tr").all()
                shown = {
                    r.locator("th").inner_text().strip(): r.locator("td").first.inner_text()
                    for r in rows
                }
                assert shown == {n: f"{t:,}" for n, t in tokens.items()}, where
                marks = set(page.locator("#table-api_key .connection-of").all_inner_texts())
                assert marks == {"· openai", "· anthropic"}, where
                assert page.evaluate(CONTRAST) == [], where
                assert _cut(page) == [], where
                page.screenshot(
                    path=shots / f"dashboard-providers-{width}-{scheme}.png", full_page=True
                )
                if width == 1440 and scheme == "dark":
                    _pick_anthropic(page, url)
                assert watched.errors == [], where
                page.context.close()


def _pick_anthropic(page: Page, url: str) -> None:
    """The provider selector narrows the page to Anthropic: its totals are
    /api/summary?provider=anthropic's and no pool panel is left (pools are OpenAI's)."""
    assert page.locator("section.pools").count() == 1
    assert page.locator("#pick-provider option").all_inner_texts() == ["All", "Anthropic", "OpenAI"]
    page.select_option("#pick-provider", "anthropic")
    page.wait_for_url("**provider=anthropic**")
    label = page.locator(".range-label")
    shown = {
        "start_time": label.get_attribute("data-start"),
        "end_time": label.get_attribute("data-end"),
    }
    claude = httpx2.get(url + "/api/summary", params={**shown, "provider": "anthropic"}).json()
    assert claude["totals"]["input_tokens"] > 0
    assert (
        int(page.locator("#kpi-input").get_attribute("data-value") or -1)
        == (claude["totals"]["input_tokens"])
    )
    assert "provider: Anthropic" in page.locator(".context").inner_text()
    assert page.locator("section.pools").count() == 0


def test_a_failing_anthropic_connection_is_not_bannered_as_openai(
    tmp_path: Path, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    """The dashboard's banner of an upstream error names what failed: with OpenAI and
    Anthropic configured, the Anthropic connection's refusal is said as that connection's, not
    under an "OpenAI" heading."""
    from usage_tracker.store import writes

    refused = "Anthropic refused the admin key (401)"
    with _both_providers_app(tmp_path, company) as url:
        store = Store.open(f"sqlite:///{tmp_path / 'both.db'}")
        with store.transaction() as conn:
            writes.finish_sync_state(
                conn, "anthropic", "messages", NOW, error=refused, backfill_complete=True
            )
        store.close()
        assert httpx2.get(url + "/api/health").json()["upstream_error"] == f"anthropic: {refused}"
        page = httpx2.get(url + "/").text
    banner = page[page.index('<p class="banner error" role="alert">') :]
    banner = banner[: banner.index("</p>")]
    assert "OpenAI" not in banner
    assert f"anthropic: {refused}" in banner


def test_a_member_sees_their_own_keys_of_every_provider_and_nothing_else(
    tmp_path: Path, company: tuple[simulator.Simulator, AnthropicSimulator, str, str]
) -> None:
    """Jane (a member) signed in: her summary holds exactly her OpenAI keys and her Anthropic
    keys (the Admin API names her as their user), with each provider's tokens of those keys."""
    from types import SimpleNamespace

    from .test_auth import JANE, signed_in

    openai_sim, sim, _url, _claude = company
    start = NOW - NOW % DAY - DAYS * DAY
    hers = [k for k in openai_sim.org.keys if k.owner_email == JANE]
    assert hers
    claude_truth = sim.company.truth(start, NOW, ("api_key_id",))
    with (
        _both_providers_app(tmp_path, company, auth_mode="password") as url,
        signed_in(SimpleNamespace(url=url), JANE) as jane,  # type: ignore[arg-type]
    ):
        mine = jane.get("/api/summary", params={"start_time": start, "end_time": NOW}).json()
    keys = {r["api_key"]: r for r in mine["by"]["api_key"] if r["api_key"]}
    expected = {k.id for k in hers} | {"apikey_" + k.id.removeprefix("key_") for k in hers}
    used = {k for k in expected if k in keys}
    assert set(keys) == used
    assert {keys[k]["provider"] for k in used} == {"openai", "anthropic"}
    providers = {r["provider"]: r for r in mine["by"]["provider"]}
    claude_tokens = sum(
        v["input_tokens"] + v["output_tokens"]
        for (key,), v in claude_truth.items()
        if key in expected
    )
    assert providers["anthropic"]["tokens"] == claude_tokens
    openai_tokens = sum(
        v.get("input_tokens", 0) + v.get("output_tokens", 0)
        for source in SOURCES
        for (key,), v in openai_sim.org.truth(source, start, NOW, ("api_key_id",)).items()
        if key in expected
    )
    assert providers["openai"]["tokens"] == openai_tokens


def test_a_year_of_backfill_asks_anthropic_nothing_before_its_reports_begin(
    tmp_path: Path,
) -> None:
    """BACKFILL_DAYS=365 against Anthropic, whose reports start 365 days back at most (and not
    before 2026-01-01) and refuse an earlier start: the sync asks from there, stores every
    token and cent after it, and fails nothing (the bench's three connections met this)."""
    import time

    now = int(time.time())
    sim = AnthropicSimulator(simulator.build(seed=7, days=20, clock=lambda: now).org)
    store = Store.open(f"sqlite:///{tmp_path / 'year.db'}")
    with BackgroundServer(sim) as served, AnthropicClient(DEFAULT_ADMIN_KEY, served.url) as client:
        report = sync_once(
            store, client, now=now, window=SyncWindow(backfill_days=365), connection="anthropic"
        )
    assert report.errors == []
    asked = [query for path, query, _beta, status, _body in sim.log if "analytics" in path]
    assert asked
    assert all(status == 200 for *_rest, status, _body in sim.log)
    starts = [dt_from(q["starting_at"][0]) for q in asked]
    assert min(starts) >= now - 365 * DAY
    start, end = now - now % DAY - 20 * DAY, now - now % HOUR + HOUR
    stored = store.usage_totals(start, end, metrics=["input_tokens", "output_tokens"])[0]
    truth = sim.company.truth(start, end, ())
    assert stored["input_tokens"] == sum(v["input_tokens"] for v in truth.values()) > 0
    billed = store.cost_totals(start - start % DAY, now - now % DAY + DAY)[0]["amount"]
    assert billed == sim.company.cost_truth(start, now - now % DAY + DAY)
    store.close()


def dt_from(text: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

"""The dashboard in a real browser: Playwright driving Debian's Chromium against a real server.

Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from usage_tracker.providers.openai.pools import load_pool_table

from .conftest import ROOT, LiveApp, live_app

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
DAY, HOUR = 86400, 3600


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("browser")
    with live_app(f"sqlite:///{workdir / 'usage.db'}", workdir, refresh_seconds=1) as live:
        yield live


class Watched:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    watched = Watched(context.new_page())
    yield watched
    context.close()
    assert watched.errors == []


def wait_until(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` from outside the page: Playwright's wait_for_function evaluates
    strings inside the page, which the dashboard's CSP (rightly) forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def _number(text: str) -> int:
    return int(text.replace(",", "").strip())


def _table(page: Page, key: str) -> dict[str, int]:
    rows = page.locator(f'table[data-table="{key}"] tbody tr')
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("th, td")
        if cells.count() == 8:
            out[cells.nth(0).inner_text().strip()] = _number(cells.nth(1).inner_text())  # Tokens
    return out


def _api(app: LiveApp, path: str, **params: Any) -> Any:
    return httpx2.get(app.url + path, params=params, timeout=30).json()


def test_the_dashboard_shows_todays_pools_and_tables_from_the_truth(
    app: LiveApp, page: Watched
) -> None:
    page.page.goto(app.url + "/?range=today")
    # Everything is in the HTML: the chart too (SVG), with no chart library to load.
    assert page.page.evaluate("window.Chart === undefined")
    day = app.now - app.now % DAY
    pools = load_pool_table()
    expected_pools = {"large": 0, "small": 0}
    expected_models: dict[str, int] = {}
    for source in ("completions", "decisions", "embeddings", "moderations"):
        for (model,), row in app.org.truth(source, day, app.now + 1, ["model"]).items():
            tokens = row.get("input_tokens", 0) + row.get("output_tokens", 0)
            expected_models[str(model)] = expected_models.get(str(model), 0) + tokens
            if source == "completions" and (pool := pools.classify(str(model))) in expected_pools:
                expected_pools[pool] += tokens
    for pool, tokens in expected_pools.items():
        used = page.page.locator(f'[data-pool="{pool}"] .pool-used').get_attribute("data-value")
        assert int(used or -1) == tokens
    table = _table(page.page, "model")
    assert {m: t for m, t in table.items() if t} == {m: t for m, t in expected_models.items() if t}
    assert page.page.locator("svg.chart").is_visible()
    page.shot("dashboard-today")


def test_changing_the_range_and_the_stacking_updates_the_page(app: LiveApp, page: Watched) -> None:
    page.page.goto(app.url + "/?range=today")
    today_requests = page.page.locator("#kpi-requests").get_attribute("data-value")
    page.page.get_by_role("link", name="30 days").click()
    page.page.wait_for_url("**range=30d**")
    summary = _api(app, "/api/summary", **_range_of(page.page))
    assert (
        int(page.page.locator("#kpi-input").get_attribute("data-value") or -1)
        == summary["totals"]["input_tokens"]
    )
    assert page.page.locator("#kpi-requests").get_attribute("data-value") != today_requests
    people = _table(page.page, "person")
    assert people == {
        r["person"]: r["tokens"]
        for r in summary["by"]["person"]
        if r["tokens"] or r["num_model_requests"] or float(r["billed_cost"] or 0)
    }
    titles = page.page.locator("svg.chart g > title").all_text_contents()
    # "11-20 UTC: 1,234 tokens" heads each bar's tooltip: the bars add up to the totals.
    drawn = sum(int(t.split(": ")[1].split()[0].replace(",", "")) for t in titles)
    assert drawn == summary["totals"]["tokens"]
    legend_people = _legend(page.page)
    page.page.get_by_role("link", name="by model").click()
    page.page.wait_for_url("**stack=model**")
    legend_models = _legend(page.page)
    assert legend_models != legend_people
    assert any(name.startswith("gpt-") for name in legend_models)
    page.shot("dashboard-30d-by-model")


def _range_of(page: Page) -> dict[str, str]:
    label = page.locator(".range-label")
    return {
        "start_time": label.get_attribute("data-start") or "",
        "end_time": label.get_attribute("data-end") or "",
    }


def _legend(page: Page) -> list[str]:
    return page.locator(".legend .legend-name").all_inner_texts()


def test_drilling_down_from_a_person_shows_their_models(app: LiveApp, page: Watched) -> None:
    page.page.goto(app.url + "/?range=7d")
    page.page.get_by_role("link", name="Jane Smith").first.click()
    page.page.wait_for_url("**person=Jane**")
    assert "person:" in page.page.locator(".context").inner_text()
    models = _table(page.page, "model")
    jane = [k.id for k in app.org.keys if k.owner_name == "Jane Smith"]
    label = page.page.locator(".range-label")
    start, end = (
        int(label.get_attribute("data-start") or 0),
        int(label.get_attribute("data-end") or 0),
    )
    expected: dict[str, int] = {}
    for source in ("completions", "decisions", "embeddings", "moderations"):
        for (key, model), row in app.org.truth(source, start, end, ["api_key_id", "model"]).items():
            if key in jane:
                expected[str(model)] = (
                    expected.get(str(model), 0)
                    + row.get("input_tokens", 0)
                    + row.get("output_tokens", 0)
                )
    assert {m: t for m, t in models.items() if t} == {m: t for m, t in expected.items() if t}


def test_a_phone_gets_no_horizontal_scroll(app: LiveApp, browser: Browser) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 780}, device_scale_factor=2, is_mobile=True
    )
    watched = Watched(context.new_page())
    watched.page.goto(app.url + "/?range=7d")
    assert watched.page.locator("svg.chart rect.s0").count() > 0
    width = watched.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    # Every table keeps its name and Tokens columns in view, the Tokens one next to the name.
    for table in watched.page.locator("table.sortable").all():
        headers = table.locator("thead th:visible").all_inner_texts()
        assert headers[1].upper().startswith("TOKENS"), headers
        first = table.locator("tbody tr").first
        for cell in (first.locator("th"), first.locator("td").first):
            box = cell.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 360, headers
    watched.shot("dashboard-phone")
    context.close()
    assert watched.errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_theme_follows_the_system_until_the_user_picks_one(
    app: LiveApp, browser: Browser, scheme: str
) -> None:
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(app.url + "/")
    assert page.locator("html").get_attribute("data-theme") == scheme
    other = "dark" if scheme == "light" else "light"
    page.get_by_role("button", name="Switch between dark and light theme").click()
    page.goto(app.url + "/people")
    assert page.locator("html").get_attribute("data-theme") == other  # the choice is kept
    context.close()


def test_the_theme_toggle_switches_and_is_remembered(app: LiveApp, page: Watched) -> None:
    page.page.goto(app.url + "/")
    html = page.page.locator("html")
    assert html.get_attribute("data-theme") == "dark"
    dark_bg = page.page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.page.get_by_role("button", name="Switch between dark and light theme").click()
    assert html.get_attribute("data-theme") == "light"
    assert page.page.evaluate("getComputedStyle(document.body).backgroundColor") != dark_bg
    page.shot("dashboard-light")
    page.page.reload()
    page.page.wait_for_load_state("domcontentloaded")
    wait_until(page.page, "document.documentElement.dataset.theme === 'light'")


def test_the_page_refreshes_itself_while_visible(app: LiveApp, page: Watched) -> None:
    page.page.goto(app.url + "/")
    page.page.evaluate("document.getElementById('content').dataset.marker = 'old'")
    wait_until(page.page, "!document.getElementById('content').dataset.marker", timeout=10)
    assert page.page.locator("#kpi-input").is_visible()


def test_tables_work_without_javascript(app: LiveApp, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    plain.goto(app.url + "/?range=7d")
    assert len(_table(plain, "person")) >= 5
    plain.get_by_role("link", name="Yesterday").click()
    assert "range=yesterday" in plain.url
    context.close()


_ROWS = "document.querySelectorAll('table[data-table=%s] tbody tr').length"


def _rows_of(table: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(label, tokens) of the rows a table shows, in the API's order (the most tokens first)."""
    return [
        (r.get("api_key_name") or r["api_key"], r["tokens"])
        for r in table
        if r["tokens"] or r["num_model_requests"] or float(r["billed_cost"] or 0)
    ]


def test_a_long_table_shows_its_first_rows_and_the_rest_on_demand(
    app: LiveApp, page: Watched, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usage_tracker.web import pages

    monkeypatch.setattr(pages, "TABLE_ROWS", 3)
    first = time.strftime("%Y-%m-%d", time.gmtime(app.now - 20 * DAY))  # a view of its own
    last = time.strftime("%Y-%m-%d", time.gmtime(app.now - 2 * DAY))
    view = f"/?range=custom&start={first}&end={last}"
    page.page.goto(app.url + view)
    summary = _api(app, "/api/summary", **_range_of(page.page))
    keys = _rows_of(summary["by"]["api_key"])
    assert len(keys) > 3
    shown = page.page.locator('table[data-table="api_key"] tbody tr')
    assert [(r, t) for r, t in _table(page.page, "api_key").items()] == keys[:3]
    link = page.page.get_by_role("link", name=f"Show all {len(keys)} API keys")
    link.click()  # fetched in place: the page stays, the table grows, the address keeps it
    wait_until(page.page, f"{_ROWS % 'api_key'} === {len(keys)}")
    assert sorted(_table(page.page, "api_key").items()) == sorted(keys)
    assert "all=api_key" in page.page.url
    assert shown.count() == len(keys)
    # Sorting a shortened table sorts all of its rows, not the few in view.
    models = [
        m
        for m in summary["by"]["model"]
        if m["tokens"] or m["num_model_requests"] or float(m["billed_cost"] or 0)
    ]
    if len(models) > 3:
        page.page.locator('table[data-table="model"] thead th', has_text="Tokens").click()
        wait_until(page.page, f"{_ROWS % 'model'} === {len(models)}")
        sorted_by = "document.querySelector('table[data-table=model] th[aria-sort]')"
        wait_until(page.page, f"{sorted_by}.getAttribute('aria-sort') === 'ascending'")
        tokens = list(_table(page.page, "model").values())
        assert tokens == sorted(tokens)
        assert "all=model" in page.page.url
        assert "all=api_key" in page.page.url
    page.shot("dashboard-tables-shown-whole")
    # Without JavaScript the link is a plain one to the same view with the table whole.
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    plain.goto(app.url + view)
    assert len(_table(plain, "api_key")) == 3
    plain.get_by_role("link", name=f"Show all {len(keys)} API keys").click()
    plain.wait_for_url("**all=api_key**")
    assert sorted(_table(plain, "api_key").items()) == sorted(keys)
    context.close()


@pytest.mark.parametrize("width", [1400, 1024, 360])
def test_money_in_the_totals_reads_like_money_and_fits_its_card(
    app: LiveApp, browser: Browser, width: int
) -> None:
    """Billed and estimated cost with thousands separators, like every other amount on the page,
    and no total wider than its card (a year of a big organization runs to six figures)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    day = dt.datetime.fromtimestamp(app.now, dt.UTC).date()
    page.goto(f"{app.url}/?range=custom&start={day - dt.timedelta(days=89)}&end={day}")
    for kpi in ("#kpi-billed", "#kpi-estimated"):
        amount = float(page.locator(kpi).get_attribute("data-value") or "nan")
        assert amount >= 1000, kpi  # enough for a separator
        assert page.locator(kpi).inner_text() == f"${amount:,.2f}"
    overflowing = page.evaluate(
        "[...document.querySelectorAll('.kpi-value')]"
        ".filter(e => e.scrollWidth > e.clientWidth).map(e => e.id)"
    )
    assert overflowing == []
    context.close()


def test_long_hostile_names_never_widen_a_page_past_a_phone(
    browser: Browser, tmp_path: Path
) -> None:
    """The People page's lists of keys and people grew as wide as their longest name (535 px
    at 360) with the names an outside check uses; the names show as text, never as markup."""
    from usage_tracker.simulator.company import HOSTILE_KEY_NAMES

    options = {"hostile_names": True}
    with live_app(f"sqlite:///{tmp_path / 'h.db'}", tmp_path, simulator_options=options) as live:
        context = browser.new_context(
            viewport={"width": 360, "height": 780}, device_scale_factor=2, is_mobile=True
        )
        page = context.new_page()
        for path in ("/", "/people"):
            page.goto(live.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, path
            assert page.locator("script:text('alert')").count() == 0
        assert HOSTILE_KEY_NAMES[10] in page.content().replace("&lt;", "<").replace("&gt;", ">")
        context.close()

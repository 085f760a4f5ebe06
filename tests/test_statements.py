"""Monthly statements (issue 21): per team and person, billed cost per provider and connection,
the costs no team carries allocated by the admin's rule, a total equal to the month's Costs API
(and Anthropic's cost report) to the cent; a closed month never changes, and a revision after it
closed is the next month's adjustment. On SQLite and PostgreSQL, against the simulators."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from usage_tracker import simulator
from usage_tracker.people.names import NO_TEAM, KeyMappings
from usage_tracker.providers.anthropic import AnthropicClient
from usage_tracker.providers.openai import AdminClient
from usage_tracker.reports import load_names
from usage_tracker.reports.statements import Allocation, month_range, statement
from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY, AnthropicSimulator
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW
from .test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

CENT = Decimal("0.01")
OCTOBER, NOVEMBER = "2026-10", "2026-11"
"""At NOW (2026-11-25), October has closed (3 days of revisions after it ended) and November
is open."""
TEAMS = {"Jane Smith": "Research", "Mei Chen": "Research", "Arjun Patel": "Platform"}
MAPPING = {
    "people": {person: {"team": team} for person, team in TEAMS.items()},
    "teams": {"Research": {"cost_centre": "CC-2200"}},
}


@dataclass
class Books:
    """One company read as an OpenAI and an Anthropic organization, synced into a store."""

    openai: simulator.Simulator
    anthropic: AnthropicSimulator
    openai_url: str
    anthropic_url: str
    store: Store
    mapping: Path

    def names(self):  # type: ignore[no-untyped-def]
        return load_names(self.store, KeyMappings(self.mapping).current())

    def sync(self, since: int | None = None) -> None:
        window = SyncWindow(backfill_days=80, since=since)
        with AdminClient(ADMIN_KEY, self.openai_url, retry=FAST_RETRY) as client:
            assert sync_once(self.store, client, now=NOW, window=window).errors == []
        with AnthropicClient(DEFAULT_ADMIN_KEY, self.anthropic_url, max_retries=0) as client:
            report = sync_once(self.store, client, now=NOW, window=window, connection="anthropic")
            assert report.errors == []

    def statement(self, month: str, rule: str = "proportional") -> dict:  # type: ignore[type-arg]
        return statement(
            self.store,
            self.names(),
            month,
            NOW,
            allocation=Allocation.parse(rule),
            lookback_days=3,
        )

    def billed(self, month: str) -> Decimal:
        """The month's Costs API and Anthropic cost report, as the simulators compute them."""
        start, end = month_range(month)
        openai = sum(self.openai.org.cost_truth(start, end).values(), Decimal(0))
        return openai + self.anthropic.company.cost_truth(start, end)


@pytest.fixture
def books(database_url: str, tmp_path: Path) -> Iterator[Books]:
    with _books(database_url, tmp_path) as found:
        yield found


@contextmanager
def _books(database_url: str, tmp_path: Path) -> Iterator[Books]:
    mapping = tmp_path / "api_key_mappings.json"
    mapping.write_text(json.dumps(MAPPING))
    openai = simulator.build(seed=7, days=80, clock=lambda: NOW)
    anthropic = AnthropicSimulator(openai.org)
    with BackgroundServer(openai) as a, BackgroundServer(anthropic) as b:
        store = Store.open(database_url)
        found = Books(openai, anthropic, a.url + "/v1", b.url, store, mapping)
        found.sync()
        yield found
        store.close()


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_EVEN)


def _money(value: object) -> Decimal:
    return Decimal(str(value))


@pytest.mark.parametrize("month", [OCTOBER, NOVEMBER])
def test_a_statement_adds_up_to_the_months_bill_to_the_cent(books: Books, month: str) -> None:
    body = books.statement(month)
    bill = _cents(books.billed(month))
    assert _money(body["billed_usd"]) == bill
    assert _money(body["total_usd"]) == bill  # no revision: no adjustment
    assert sum(_money(ln["billed_usd"]) for ln in body["lines"]) == bill
    assert sum(_money(t["total_usd"]) for t in body["teams"]) == bill
    for team in body["teams"]:
        assert sum(_money(ln["billed_usd"]) for ln in team["lines"]) == _money(team["total_usd"])
    assert body["closed"] is (month == OCTOBER)
    providers = {ln["provider"] for ln in body["lines"] if ln["line"] == "usage"}
    assert providers == {"openai", "anthropic"}
    research = next(t for t in body["teams"] if t["team"] == "Research")
    assert research["cost_centre"] == "CC-2200"
    people = {ln["what"] for ln in research["lines"] if ln["line"] == "usage"}
    assert people == {"Jane Smith", "Mei Chen"}


def test_the_costs_no_team_carries_are_allocated_by_the_rule(books: Books) -> None:
    """By hand: each team's own billed cost from the simulator, what no team carries shared in
    proportion to it, or all to the team named."""
    start, end = month_range(NOVEMBER)
    org = books.openai.org
    owners = {k.id: k.owner_name for k in org.keys}
    own: dict[str, Decimal] = defaultdict(Decimal)
    unassigned = Decimal(0)
    for (key,), amount in org.cost_truth(start, end, ("api_key_id",)).items():
        team = TEAMS.get(owners.get(key or "", ""), NO_TEAM) if key else NO_TEAM
        if team == NO_TEAM:
            unassigned += amount
        else:
            own[team] += amount
    # Anthropic's costs per key, from its cost report as stored
    names = books.names()
    for row in books.store.cost_totals(start, end, ["connection", "api_key_id"]):
        if row["connection"] != "anthropic":
            continue
        team = names.team(row["api_key_id"] or "")
        if team == NO_TEAM:
            unassigned += row["amount"]
        else:
            own[team] += row["amount"]
    total_own = sum(own.values(), Decimal(0))
    proportional = books.statement(NOVEMBER)
    for team, amount in own.items():
        shown = next(t for t in proportional["teams"] if t["team"] == team)
        allocated = sum(
            _money(ln["billed_usd"]) for ln in shown["lines"] if ln["line"] == "allocated"
        )
        assert abs(allocated - unassigned * amount / total_own) <= CENT * 4, team
    assert unassigned > 0
    assert NO_TEAM not in {t["team"] for t in proportional["teams"]}

    to_platform = books.statement(NOVEMBER, "team:Platform")
    platform = next(t for t in to_platform["teams"] if t["team"] == "Platform")
    allocated = sum(
        _money(ln["billed_usd"]) for ln in platform["lines"] if ln["line"] == "allocated"
    )
    assert abs(allocated - unassigned) <= CENT * 4
    research = next(t for t in to_platform["teams"] if t["team"] == "Research")
    assert not [ln for ln in research["lines"] if ln["line"] == "allocated"]
    assert _money(to_platform["total_usd"]) == _money(proportional["total_usd"])


def test_a_closed_month_never_changes_and_a_revision_is_next_months_adjustment(
    books: Books,
) -> None:
    october = books.statement(OCTOBER)
    assert october["closed"] is True
    # A leaked key's burst on 20 October, reported after October closed.
    jane = next(k for k in books.openai.org.keys if k.owner_name == "Jane Smith")
    burst = int(dt.datetime(2026, 10, 20, 15, tzinfo=dt.UTC).timestamp())
    before = books.billed(OCTOBER)
    books.openai.org.leak(jane.name, burst, 400)
    leaked = books.billed(OCTOBER) - before
    assert leaked > 0
    books.sync(since=month_range(OCTOBER)[0])  # re-reads October's costs

    assert books.statement(OCTOBER) == october  # kept as it closed
    november = books.statement(NOVEMBER)
    adjustments = [ln for ln in november["lines"] if ln["line"] == "adjustment"]
    assert adjustments
    assert {ln["of"] for ln in adjustments} == {OCTOBER}
    assert abs(sum(_money(ln["billed_usd"]) for ln in adjustments) - leaked) <= CENT * 2
    assert _money(november["adjustments_usd"]) == _cents(leaked)
    assert _money(november["total_usd"]) == _cents(books.billed(NOVEMBER) + leaked)
    assert _money(november["billed_usd"]) == _cents(books.billed(NOVEMBER))
    assert sum(_money(ln["billed_usd"]) for ln in november["lines"]) == _money(
        november["total_usd"]
    )


def test_the_statements_page_api_and_files_show_the_same_statement(
    books: Books, tmp_path: Path
) -> None:
    """The page (admins and viewers; a member gets 403), /api/statement as JSON, CSV and Excel
    (a summary sheet and one per team, currency cells, a totals row) and the CLI's file."""
    import os
    import subprocess
    import sys

    from openpyxl import load_workbook

    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    from .test_auth import JANE, VIEWER, _add_account, signed_in

    url = books.store.engine.url.render_as_string(hide_password=False)
    for email, role in ((VIEWER, "viewer"), (JANE, "member")):
        _add_account(url, email, role)
    settings = load_settings(
        database_url=url,
        openai_admin_key=ADMIN_KEY,
        openai_base_url=books.openai_url,
        key_mappings_file=books.mapping,
        auth_mode="password",
    )
    expected = books.statement(OCTOBER)
    with BackgroundServer(create_app(settings, run_sync=False, clock=lambda: NOW)) as server:
        app = type("App", (), {"url": server.url})()
        with signed_in(app, JANE) as jane:  # type: ignore[arg-type]
            assert jane.get("/statements").status_code == 403
            assert jane.get(f"/api/statement?month={OCTOBER}").status_code == 403
        with signed_in(app, VIEWER) as viewer:  # type: ignore[arg-type]
            page = viewer.get(f"/statements?month={OCTOBER}").text
            served = viewer.get(f"/api/statement?month={OCTOBER}").json()
            csv = viewer.get(f"/api/statement?month={OCTOBER}&format=csv").text
            xlsx = viewer.get(f"/api/statement?month={OCTOBER}&format=xlsx").content
            bad = viewer.get("/api/statement?month=2026-13")
    assert bad.status_code in (400, 422)
    assert f'data-value="{expected["total_usd"]}"' in page
    assert 'href="/statements"' in page
    assert _money(served["total_usd"]) == _money(expected["total_usd"])
    assert served["closed"] is True
    *lines, total = csv.strip().splitlines()
    assert total.startswith(f'"TOTAL, {OCTOBER}"') or total.startswith(f"TOTAL, {OCTOBER}")
    assert len(lines) == len(expected["lines"]) + 1  # the header
    path = tmp_path / "statement.xlsx"
    path.write_bytes(xlsx)
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", *(t["team"] for t in expected["teams"])]
    summary = book["Summary"]
    totals = [r for r in summary.iter_rows(values_only=True) if r and r[0] == "TOTAL"]
    assert _cents(Decimal(str(totals[0][2]))) == _money(expected["total_usd"])
    research = book["Research"]
    assert research["A1"].value == f"Research, cost centre CC-2200: statement {OCTOBER}"
    money = [c for c in research["E"][2:] if c.value is not None]
    assert money
    assert all(c.number_format == '"$"#,##0.00' for c in money)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "usage_tracker",
            "statement",
            "--month",
            OCTOBER,
            "--format",
            "xlsx",
            "--output",
            str(tmp_path / "cli.xlsx"),
        ],
        env={**os.environ, "DATABASE_URL": url, "KEY_MAPPINGS_FILE": str(books.mapping)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert load_workbook(tmp_path / "cli.xlsx").sheetnames == book.sheetnames
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "usage_tracker",
            "statement",
            "--month",
            "2026-11",
            "--allocate",
            "everyone",
        ],
        env={**os.environ, "DATABASE_URL": url, "KEY_MAPPINGS_FILE": str(books.mapping)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 2
    assert "--allocate" in wrong.stderr


def test_the_statements_page_and_the_teams_table_read_and_fit(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    """The Statements page at 1440 and 360 px and the dashboard's Teams table at 360 px, dark
    and light (screenshots in test-artifacts/pages/)."""
    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    from .test_pages_browser import CONTRAST, _cut, new_page

    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    with _books(f"sqlite:///{tmp_path / 's.db'}", tmp_path) as found:
        url = found.store.engine.url.render_as_string(hide_password=False)
        settings = load_settings(
            database_url=url,
            openai_admin_key=ADMIN_KEY,
            openai_base_url=found.openai_url,
            key_mappings_file=found.mapping,
            auth_mode="none",
        )
        app = create_app(settings, run_sync=False, clock=lambda: NOW)
        with BackgroundServer(app) as server:
            for scheme in ("dark", "light"):
                for width in (1440, 360):
                    where = f"{width} {scheme}"
                    watched = new_page(browser, width, scheme)
                    page = watched.page
                    page.goto(server.url + f"/statements?month={OCTOBER}")
                    assert page.locator("#statement-teams tbody tr").count() == 2, where
                    assert page.evaluate(CONTRAST) == [], where
                    assert _cut(page) == [], where
                    page.screenshot(path=shots / f"statements-{width}-{scheme}.png", full_page=True)
                    if width == 360:
                        page.goto(server.url + "/?range=mtd")
                        table = page.locator("#table-team")
                        assert table.locator("tbody tr").count() >= 3, where
                        assert _cut(page) == [], where
                        table.screenshot(path=shots / f"teams-{width}-{scheme}.png")
                    assert watched.errors == [], where
                    page.context.close()


def test_a_months_chart_counts_every_providers_tokens_once(books: Books) -> None:
    """Found by the Teams screenshot: a chart of days computed "other" from OpenAI's sources
    only, so with Anthropic's tokens in the top series "other" went negative (bars of negative
    height) and each day's bar was short of its tokens."""
    from usage_tracker.reports.charts import usage_over_time

    start, end = month_range(NOVEMBER)[0], NOW - NOW % 3600
    chart = usage_over_time(books.store, books.names(), start, end, "person")
    assert chart["bucket"] == "day"
    days = list(zip(*chart["series"].values(), strict=True))
    assert all(v >= 0 for day in days for v in day)
    stored = books.store.usage_totals(
        start, end, ["source"], metrics=["input_tokens", "output_tokens"]
    )
    assert sum(sum(day) for day in days) == sum(
        r["input_tokens"] + r["output_tokens"] for r in stored
    )

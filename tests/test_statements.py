"""Monthly statements (issue 21): per team and person, billed cost per provider and connection,
the costs no team carries allocated by the admin's rule, a total equal to the month's Costs API
(and Anthropic's cost report) to the cent; a closed month never changes, and a revision after it
closed is the next month's adjustment. On SQLite and PostgreSQL, against the simulators."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

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

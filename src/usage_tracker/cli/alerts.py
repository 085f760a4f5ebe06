"""``usage-tracker alerts check|test|run``: the rules as understood, a test message to every
channel, and one evaluation now (for a cron job beside ``sync --once``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from usage_tracker import runtime
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.alerts.rules import describe_rules
from usage_tracker.people.names import KeyMappings
from usage_tracker.providers.openai.pools import PoolTableError, load_pool_table
from usage_tracker.settings import Settings, SettingsError, load_settings
from usage_tracker.store import Store, StoreUnavailableError
from usage_tracker.text.untrusted import terminal

alerts = typer.Typer(help="Alert rules (ALERTS_FILE) and channels (ALERT_URLS).")


def _fail(message: object) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def engine_for(settings: Settings, store: Store) -> AlertEngine:
    """The alert engine of these settings and of what the Alerts page stored, over ``store``;
    a bad file is a CLI error."""
    from usage_tracker.store import alerts as stored_alerts

    with store.transaction() as conn:
        stored = stored_alerts.settings(conn)
    try:
        rules, urls = runtime.alert_rules(settings, stored)
        pools = load_pool_table(settings.tiers_file)
    except (SettingsError, PoolTableError) as e:
        raise _fail(e) from None
    return runtime.alert_engine(
        settings,
        store,
        rules=rules,
        urls=urls,
        pools=pools,
        mappings=KeyMappings(settings.key_mappings_file),
    )


@contextmanager
def opened() -> Iterator[tuple[Settings, Store]]:
    """The settings and the store, logging configured; a bad setting is a CLI error."""
    try:
        settings = load_settings()
        store = runtime.open_store(settings)
    except (SettingsError, StoreUnavailableError) as e:
        raise _fail(e) from None
    runtime.configure_logging(settings)
    try:
        yield settings, store
    finally:
        store.close()


@contextmanager
def _engine() -> Iterator[AlertEngine]:
    with opened() as (settings, store):
        yield engine_for(settings, store)


@alerts.command("check")
def check() -> None:
    """Read ALERTS_FILE and ALERT_URLS and say what each rule watches (exit 2 on an error,
    which names the file, line and column)."""
    try:
        settings = load_settings()
        rules, urls = runtime.alert_rules(settings)
    except SettingsError as e:
        raise _fail(e) from None
    source = str(settings.alerts_file) if settings.alerts_file else "the defaults (no ALERTS_FILE)"
    typer.echo(f"rules from {source}:")
    for rule in describe_rules(rules):
        typer.echo(terminal(f"  {rule['rule']}: {rule['watches']}: {rule['fires']}"))
    channels = len(dict.fromkeys([*rules.channels, *urls]))
    typer.echo(
        f"{channels} default channel(s)" if channels else "no channel: alerts are recorded only"
    )


@alerts.command("test")
def test() -> None:
    """Send a test message to every default channel (exit 1 when one fails)."""
    with _engine() as engine:
        results = engine.send_test()
    if not results:
        raise _fail("no channel is set: set ALERT_URLS or channels in ALERTS_FILE")
    for label, error in results:
        typer.echo(f"{'failed' if error else 'sent'}: {label}{f': {error}' if error else ''}")
    if any(error for _, error in results):
        raise typer.Exit(1)


@alerts.command("run")
def run() -> None:
    """Evaluate the rules now against the database and deliver what is due (what serve and
    sync do after every sync), and say why nothing was sent when nothing was."""
    with _engine() as engine:
        report = engine.run()
        problem = engine.status.error
        channels = len(engine.default_urls) or len(engine.rules.all_channels())
    for key in report.recorded:
        typer.echo(terminal(f"fired: {key}"))
    for key in report.caught_up:
        typer.echo(terminal(f"fired before any channel was set, sent now: {key}"))
    typer.echo(f"{len(report.recorded)} new alert(s), {report.sent} sent, {report.failed} failed")
    reason = report.why_nothing_was_sent(channels)
    if reason:
        typer.echo(f"nothing sent: {reason}")
    if problem:
        raise _fail(problem)
    if report.failed:
        raise typer.Exit(1)

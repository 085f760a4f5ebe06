"""The ``usage-tracker`` command: thin wrappers that parse options and call library functions."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from usage_tracker import __version__
from usage_tracker.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from usage_tracker.store import Store
    from usage_tracker.sync import Feed, Progress, SyncReport

app = typer.Typer(
    help="OpenAI Usage Tracker: who used what in a shared OpenAI organization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """OpenAI Usage Tracker."""


@app.command()
def simulate(
    port: Annotated[int, typer.Option(envvar="SIM_PORT", help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(envvar="SIM_HOST", help="Address to bind.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(envvar="SIM_SEED", help="Seed of the organization.")] = 1,
    days: Annotated[int, typer.Option(envvar="SIM_DAYS", min=1, help="Days of history.")] = 90,
    admin_key: Annotated[
        str, typer.Option(envvar="SIM_ADMIN_KEY", help="The one admin key accepted.")
    ] = "sk-admin-simulator",
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of responses that fail.")
    ] = 0.0,
    faults: Annotated[
        str, typer.Option(help="Kinds of fault drawn: 429, 500, slow, drop, truncate.")
    ] = "429,500,slow,drop,truncate",
    slow_seconds: Annotated[float, typer.Option(min=0.0, help="Delay of a slow fault.")] = 2.0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Latency added to each response.")] = 0,
    late_hours: Annotated[
        int, typer.Option(min=0, help="Recent hours reported incomplete, as OpenAI's late data.")
    ] = 0,
    keys: Annotated[
        int | None, typer.Option(min=1, help="A benchmark organization with this many keys.")
    ] = None,
    users: Annotated[int, typer.Option(min=1, help="… users (with --keys).")] = 50,
    projects: Annotated[int, typer.Option(min=1, help="… projects (with --keys).")] = 10,
    models: Annotated[int, typer.Option(min=1, help="… models (with --keys).")] = 30,
    rows_per_hour: Annotated[
        int, typer.Option(min=1, help="… completion rows an hour on average (with --keys).")
    ] = 60,
    api_version: Annotated[
        str,
        typer.Option(
            help="Answer as OpenAI's API did in 2026-08 (no api_source, no decisions), as it "
            "does now (2026-11), or as a newer one (2027-01: a field this version ignores)."
        ),
    ] = "2026-11",
    hostile_names: Annotated[
        bool,
        typer.Option(
            "--hostile-names",
            help="Name keys, users and projects as a hostile member would: formulas, markup, "
            "terminal escapes, duplicates (to check exports, pages and metrics).",
        ),
    ] = False,
    provider: Annotated[
        str,
        typer.Option(
            help="Whose Admin API to answer as: openai (base URL …/v1) or anthropic (the same "
            "company's Claude traffic; base URL without /v1; admin key sk-ant-admin01-simulator)."
        ),
    ] = "openai",
) -> None:
    """Serve a simulated organization on the OpenAI admin API contract (base URL .../v1): the
    small hand-written one, or with --keys one of a chosen size (for benchmarks); with
    --provider anthropic, the same organization on Anthropic's."""
    import uvicorn

    from usage_tracker import simulator

    if api_version not in simulator.API_VERSIONS:
        raise typer.BadParameter(
            f"choose among {', '.join(simulator.API_VERSIONS)}", param_hint="--api-version"
        )
    if provider not in ("openai", "anthropic"):
        raise typer.BadParameter("choose openai or anthropic", param_hint="--provider")
    kinds = tuple(k.strip() for k in faults.split(",") if k.strip())
    unknown = set(kinds) - set(simulator.FAULT_KINDS)
    if unknown or not kinds:
        raise typer.BadParameter(
            f"unknown fault kind {', '.join(sorted(unknown)) or '(none)'}; "
            f"choose among {', '.join(simulator.FAULT_KINDS)}",
            param_hint="--faults",
        )
    injected = simulator.Faults(
        rate=fault_rate,
        kinds=kinds,
        seed=seed,
        slow_seconds=slow_seconds,
        latency_seconds=latency_ms / 1000,
    )
    size = None
    if keys is not None:
        size = simulator.Size(keys, users, projects, models, rows_per_hour)
    sim = simulator.build(
        seed=seed,
        days=days,
        admin_key=admin_key,
        faults=injected,
        late_hours=late_hours,
        size=size,
        hostile_names=hostile_names,
        api_version=api_version,
    )
    if provider == "anthropic":
        from usage_tracker.simulator.anthropic import AnthropicSimulator

        claude = AnthropicSimulator(sim.org)
        typer.echo(
            f"Simulated Anthropic Admin API at http://{host}:{port} (seed {seed}, {days} days)"
        )
        uvicorn.run(claude, host=host, port=port, log_level="warning")
        return
    typer.echo(f"Simulated OpenAI admin API at http://{host}:{port}/v1 (seed {seed}, {days} days)")
    typer.echo(f"ground truth: http://{host}:{port}/_simulator/truth?source=…&start_time=…")
    uvicorn.run(sim, host=host, port=port, log_level="warning")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _date(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


@app.command()
def sync(
    once: Annotated[bool, typer.Option("--once", help="Sync once and exit.")] = False,
    since: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="Fetch from this UTC date this run."),
    ] = None,
) -> None:
    """Copy usage, costs and names from every connection (OPENAI_ADMIN_KEY's, CONNECTIONS_FILE's)
    into the database (every SYNC_INTERVAL_SECONDS, and the last two hours every
    RECENT_SYNC_SECONDS in between)."""
    from usage_tracker import runtime
    from usage_tracker.store import StoreUnavailableError

    start = _date(since)
    settings = _settings()
    runtime.configure_logging(settings)
    try:
        feeds = runtime.feeds(settings, since=start)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        try:
            store = runtime.open_store(settings)
        except StoreUnavailableError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        try:
            _sync(store, feeds, settings, once=once)
        finally:
            store.close()
    finally:
        for feed in feeds:
            feed.client.close()


def _sync(store: Store, feeds: list[Feed], settings: Settings, *, once: bool) -> None:
    from usage_tracker import runtime
    from usage_tracker.store import StoreUnavailableError
    from usage_tracker.sync import run_forever, sync_each, sync_once, sync_recent

    def full(progress: Progress | None = None) -> SyncReport:
        def one(feed: Feed) -> SyncReport:
            shown = progress
            if progress is not None and len(feeds) > 1:
                # a bar per connection and source
                def shown(source: str, *at: int, name: str = feed.connection) -> None:
                    progress(f"{name}/{source}", *at)

            return sync_once(
                store, feed.client, window=feed.window, connection=feed.connection, progress=shown
            )

        return sync_each(store, feeds, one)

    def recent() -> SyncReport:
        return sync_each(
            store, feeds, lambda f: sync_recent(store, f.client, connection=f.connection)
        )

    if not once:
        from usage_tracker.cli.alerts import engine_for

        engine = engine_for(settings, store)
        acting = runtime.action_engine(settings, store, lambda: engine)

        def after() -> None:
            engine.run()
            acting.run()

        stopping = threading.Event()
        typer.echo(f"syncing every {settings.sync_interval_seconds} s; Ctrl-C stops")
        try:
            run_forever(
                full,
                settings.sync_interval_seconds,
                stopping,
                recent=recent if settings.recent_sync_seconds else None,
                recent_seconds=settings.recent_sync_seconds,
                after=after,
            )
        except KeyboardInterrupt:
            stopping.set()
        return
    try:
        with _ProgressBars() as bars:
            report = full(bars.update)
    except StoreUnavailableError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if report.skipped:
        typer.echo("another process is syncing this database; nothing done")
        return
    rows = sum(o.rows for o in report.outcomes.values())
    requests = sum(sum(f.client.requests.values()) for f in feeds)
    typer.echo(f"synced: {rows} rows stored, {requests} upstream requests")
    for line in _grouped(report.errors):
        typer.echo(f"error: {line}", err=True)
    alerts_failed = _alerts_after_sync(settings, store)
    if report.errors or alerts_failed:
        raise typer.Exit(1)


def _grouped(errors: list[str]) -> list[str]:
    """``source: message`` errors, one line per message: a refused key is one line naming
    every source it stopped, not one line per source."""
    sources: dict[str, list[str]] = {}
    for error in errors:
        source, _, message = error.partition(": ")
        if not message:
            source, message = "", error
        sources.setdefault(message, []).append(source)
    lines = []
    for message, where in sources.items():
        named = [s for s in where if s]
        if len(named) > 1:
            lines.append(f"{message} ({len(named)} sources: {', '.join(named)})")
        else:
            lines.append(f"{named[0]}: {message}" if named else message)
    return lines


def _alerts_after_sync(settings: Settings, store: Store) -> bool:
    """What the sync loop does after each pass, for a sync run by cron: evaluate the alert
    rules and deliver what is due. True when something failed (said on standard error)."""
    from usage_tracker import runtime
    from usage_tracker.cli.alerts import engine_for
    from usage_tracker.text.untrusted import terminal

    engine = engine_for(settings, store)
    report = engine.run()
    for key in [*report.recorded, *report.caught_up]:
        typer.echo(terminal(f"alert: {key}"))
    typer.echo(f"alerts: {len(report.recorded)} new, {report.sent} sent, {report.failed} failed")
    if engine.status.error:
        typer.echo(f"error: {engine.status.error}", err=True)
    acting = runtime.action_engine(settings, store, lambda: engine)
    recorded = acting.run()
    if acting.enabled:
        typer.echo(f"actions: {len(recorded)} new")
    if acting.status.error:
        typer.echo(f"error: {acting.status.error}", err=True)
    return bool(engine.status.error or report.failed or acting.status.error)


class _ProgressBars:
    """One Rich progress bar per source, shown on a terminal for long backfills."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=False, disable=not sys.stderr.isatty())
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressBars:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def update(self, source: str, done_until: int, start: int, end: int) -> None:
        if source not in self._tasks:
            self._tasks[source] = self._progress.add_task(source, total=max(1, end - start))
        self._progress.update(self._tasks[source], completed=min(end, done_until) - start)


@app.command()
def serve() -> None:
    """Serve the dashboard and API (HOST:PORT) and sync in the background; settings from the
    environment and .env."""
    from usage_tracker import runtime
    from usage_tracker.web import serving
    from usage_tracker.web.app import create_app

    settings = _settings()
    try:
        settings.require_auth_mode()
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    runtime.configure_logging(settings)
    _check_database(settings)
    _first_admin(settings)
    if settings.openai_admin_key is None:
        typer.echo("warning: OPENAI_ADMIN_KEY is not set; serving stored data only", err=True)
    try:
        app = create_app(settings)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"OpenAI Usage Tracker at http://{settings.host}:{settings.port}")
    target: object = app
    if settings.workers > 1:  # each worker process builds the app from the same settings
        typer.echo(f"{settings.workers} worker processes")
        target = "usage_tracker.web.app:app_from_environment"
    serving.run(target, settings.host, settings.port, settings.log_level, workers=settings.workers)


def _first_admin(settings: Settings) -> None:
    """With AUTH_MODE=password and no admin who can sign in: the first admin from
    ADMIN_PASSWORD_FILE, or a one-time setup link, said on standard output (the container's
    log)."""
    from usage_tracker import runtime
    from usage_tracker.store import StoreUnavailableError
    from usage_tracker.web.accounts import first_admin

    try:
        store = runtime.open_store(settings)
        try:
            lines = first_admin(settings, store)
        finally:
            store.close()
    except (SettingsError, StoreUnavailableError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for line in lines:
        typer.echo(line)


@app.command()
def healthcheck() -> None:
    """Ask the server on this machine (PORT) whether it answers and reaches its database: exit 0
    when it does, 1 otherwise (the Docker image's HEALTHCHECK)."""
    import http.client

    settings = _settings()
    exact = [h for h in settings.allowed_hosts if "*" not in h]
    host = exact[0] if exact else "127.0.0.1"
    connection = http.client.HTTPConnection("127.0.0.1", settings.port, timeout=5)
    try:
        connection.request("GET", "/api/health", headers={"Host": host})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")[:200]
    except OSError as e:
        typer.echo(f"unhealthy: nothing answers on 127.0.0.1:{settings.port} ({e})", err=True)
        raise typer.Exit(1) from None
    finally:
        connection.close()
    if response.status != 200:
        typer.echo(f"unhealthy: {response.status} {body}", err=True)
        raise typer.Exit(1)
    typer.echo(body)


def _check_database(settings: Settings) -> None:
    """Open (and migrate) the database once before serving, so that a database that is down
    at start-up is one line saying so, not a traceback from the server's start-up."""
    from usage_tracker import runtime
    from usage_tracker.store import StoreUnavailableError

    try:
        runtime.open_store(settings).close()
    except StoreUnavailableError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def demo(
    port: Annotated[int, typer.Option(envvar="PORT", help="Port of the dashboard.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated organization.")] = 1,
) -> None:
    """The whole app against a built-in simulated company, as an OpenAI organization and as an
    Anthropic one: no key needed."""
    import json
    import tempfile
    from pathlib import Path

    from usage_tracker import runtime, simulator
    from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY, AnthropicSimulator
    from usage_tracker.sync import sync_each, sync_once
    from usage_tracker.web import serving
    from usage_tracker.web.app import create_app
    from usage_tracker.web.serving import BackgroundServer

    sim = simulator.build(seed=seed, days=90, late_hours=2)
    with (
        tempfile.TemporaryDirectory(prefix="usage-tracker-demo-") as tmp,
        BackgroundServer(sim) as upstream,
        BackgroundServer(AnthropicSimulator(sim.org)) as claude,
    ):
        workdir = Path(tmp)
        service = next(k for k in sim.org.keys if k.owner_type == "service_account")
        mappings = workdir / "api_key_mappings.json"
        mappings.write_text(json.dumps({service.id: "Data Platform Team"}, indent=2))
        alerts = workdir / "alerts.yaml"  # recorded and shown on /alerts (no channel is set)
        alerts.write_text(
            "budgets:\n  - {name: org-month, limit: 500, cost: estimated}\n"
            "forecasts:\n  - {limit: 400}\n"
            'digest: {at: "00:00"}\n'
        )
        settings = _settings(
            alerts_file=alerts,
            openai_admin_key=simulator.DEFAULT_ADMIN_KEY,
            openai_base_url=upstream.url + "/v1",
            anthropic_admin_key=DEFAULT_ADMIN_KEY,
            anthropic_base_url=claude.url,
            database_url=f"sqlite:///{workdir / 'demo.db'}",
            key_mappings_file=mappings,
            auth_mode="none",
            host="127.0.0.1",
            port=port,
            sync_interval_seconds=60,
            log_level="warning",  # keep the terminal for the URL; problems still show
        )
        runtime.configure_logging(settings)
        typer.echo(f"simulated OpenAI organization at {upstream.url}/v1, Anthropic at {claude.url}")
        typer.echo(f"database in {workdir}")
        typer.echo("first sync: 90 days of usage of both…")
        store = runtime.open_store(settings)
        feeds = runtime.feeds(settings)
        report = sync_each(
            store,
            feeds,
            lambda f: sync_once(store, f.client, window=f.window, connection=f.connection),
        )
        for feed in feeds:
            feed.client.close()
        store.close()
        rows = sum(o.rows for o in report.outcomes.values())
        typer.echo(f"stored {rows} rows")
        typer.echo(
            f"\n  Dashboard: http://127.0.0.1:{port}\n  API docs:  http://127.0.0.1:{port}/docs\n"
        )
        # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it lets the
        # temporary database be removed instead of the process dying on the spot.
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            serving.run(create_app(settings), "127.0.0.1", port, "warning")
    typer.echo("demo stopped; its temporary database is removed")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    app()


def _register_subcommands() -> None:
    from usage_tracker.cli import reports
    from usage_tracker.cli.accounts import tokens, users
    from usage_tracker.cli.actions import actions
    from usage_tracker.cli.alerts import alerts
    from usage_tracker.cli.pools import pools

    app.add_typer(users, name="user")
    app.add_typer(tokens, name="token")
    app.add_typer(pools, name="pools")
    app.add_typer(alerts, name="alerts")
    app.add_typer(actions, name="actions")
    app.command()(reports.export)
    app.command()(reports.report)
    app.command()(reports.statement)


_register_subcommands()

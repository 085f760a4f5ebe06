"""``create_app(settings)``: the FastAPI application, its start-up and its shared state."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from usage_tracker import __version__, runtime
from usage_tracker.actions.engine import ActionEngine
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.people.names import KeyMappings
from usage_tracker.providers import ProviderClient
from usage_tracker.providers.connections import Connection
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.pools import PoolTable, PoolTableError, load_pool_table
from usage_tracker.reports import ReportError
from usage_tracker.runtime import open_client
from usage_tracker.settings import Settings, SettingsError
from usage_tracker.store import Store, StoreUnavailableError, writes
from usage_tracker.store.schema import DEFAULT_CONNECTION
from usage_tracker.sync import Feed, SyncReport, run_forever, sync_each, sync_once, sync_recent
from usage_tracker.web import templating
from usage_tracker.web.auth import CurrentUser, SignInRequired
from usage_tracker.web.cursors import CursorSigner
from usage_tracker.web.minute import (
    MINUTE_RETRY,
    MINUTE_TIMEOUT_SECONDS,
    Busy,
    MinuteGateway,
    UpstreamFailure,
)
from usage_tracker.web.state import AppState

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def _pool_table(settings: Settings) -> tuple[PoolTable, str | None]:
    try:
        return load_pool_table(settings.tiers_file), None
    except PoolTableError as e:
        log.error("pool table: %s; using the shipped table", e)
        return load_pool_table(None), f"{e}; the shipped table is in use"


def _flow_secret(settings: Settings) -> str:
    """Signs the OpenID flow's ten-minute cookie. SESSION_SECRET when set (replicas must share
    it); else one per process (a sign-in started on one replica cannot finish on another)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    import secrets

    return secrets.token_urlsafe(32)


def _session_secret(settings: Settings, store: Store) -> str:
    """SESSION_SECRET, or one generated on the first start and shared through the database by
    every replica (never a fixed default)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    from usage_tracker.people.access import new_secret

    return store.secret("session_secret", new_secret())


def _start_alerts(state: AppState) -> AlertEngine:
    """The alert engine of the rules and channels in force (those stored by the Alerts page
    too); when the stored ones cannot be read, the file's or the defaults, saying why."""
    from usage_tracker.store import alerts as alert_rows
    from usage_tracker.web.alerts import build_engine

    with state.store.transaction() as conn:
        stored = alert_rows.settings(conn)
    try:
        return build_engine(state, stored)
    except SettingsError as e:
        log.error("alerts: %s; using ALERTS_FILE or the defaults", e)
        engine = build_engine(state, {})
        engine.status.error = str(e)
        return engine


def _start_actions(state: AppState) -> ActionEngine:
    """The actions, over the alert engine in force (whose budget rules name them)."""
    from usage_tracker.web.alerts import current_engine

    def alerts() -> AlertEngine:
        engine = current_engine(state)
        assert engine is not None
        return engine

    return runtime.action_engine(state.settings, state.store, alerts, clock=state.clock)


def _minute_client(
    settings: Settings, client: AdminClient | None, primary: Connection | None
) -> AdminClient | None:
    """The client of the 1m path (the primary connection's): a short deadline and one retry,
    so that a slow OpenAI never holds the app's workers for long (the sync's client may wait
    minutes on purpose)."""
    if primary is None:
        return client
    return open_client(
        settings, connection=primary, retry=MINUTE_RETRY, timeout=MINUTE_TIMEOUT_SECONDS
    )


def _primary_client(
    clients: Mapping[str, ProviderClient], primary: Connection | None
) -> AdminClient | None:
    """Of ``clients``, the primary OpenAI connection's: the one /api/usage's 1m path uses."""
    found = clients.get(primary.name) if primary is not None else None
    return found if isinstance(found, AdminClient) else None


def _feeds(
    settings: Settings, clients: Mapping[str, ProviderClient], found: Sequence[Connection]
) -> list[Feed]:
    """What the sync loop reads: each connection's client with its window."""
    connections = {c.name: c for c in found}
    return [
        Feed(name, client, runtime.sync_window(settings, connection=connections.get(name)))
        for name, client in clients.items()
    ]


def _clients(
    settings: Settings,
    client: AdminClient | None,
    found: Sequence[Connection],
    primary: Connection | None,
) -> dict[str, ProviderClient]:
    """A client per connection; ``client`` (a test's) stands for the primary connection's."""
    if client is not None and primary is None:
        return {DEFAULT_CONNECTION: client}
    return {
        c.name: client
        if client is not None and primary is not None and c.name == primary.name
        else runtime.open_reader(settings, c)
        for c in found
    }


def create_app(
    settings: Settings,
    *,
    client: AdminClient | None = None,
    run_sync: bool = True,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app. At start-up it migrates the database and, when ``run_sync`` and an admin key
    (or ``client``) are given, runs the sync loop in a background thread. Raises SettingsError
    when no sign-in mode was chosen."""
    settings.require_auth_mode()
    runtime.alert_rules(settings)  # ALERTS_FILE and ALERT_URLS, checked before serving
    # CONNECTIONS_FILE and the keys it names, likewise: read once, here.
    found = runtime.connections(settings)
    primary = runtime.pools_of(found)  # the first OpenAI connection

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prices, prices_error = runtime.load_prices(settings)
        store = runtime.open_store(settings, prices)
        clients = _clients(settings, client, found, primary)
        upstream = client or _primary_client(clients, primary)
        pools, pool_error = _pool_table(settings)
        signer = CursorSigner(primary.key.get_secret_value() if primary is not None else None)
        minute_client = _minute_client(settings, upstream, primary)
        secret = _session_secret(settings, store)
        state = AppState(
            settings,
            store,
            KeyMappings(settings.key_mappings_file),
            pools,
            pool_error,
            upstream,
            MinuteGateway(minute_client, signer),
            signer,
            prices_error=prices_error,
            csrf_key=hashlib.sha256(b"usage-tracker csrf|" + secret.encode()).digest(),
            clock=clock,
            clients=clients,
            connections=list(found),
        )
        state.alerts = _start_alerts(state)
        state.actions = _start_actions(state)
        templating.compile_all()  # before serving (175 ms): not by the first visitor
        for name, opened in clients.items():
            opened.on_trouble = _share_trouble(store, name)
        app.state.app_state = state
        thread = None
        if run_sync and clients:
            thread = _start_sync(state, _feeds(settings, clients, found))
        try:
            yield
        finally:
            state.stopping.set()
            if thread is not None:
                thread.join(timeout=30)
            opened_here = [c for c in [minute_client, *clients.values()] if c is not None]
            for opened in opened_here:
                if opened is not client:  # the caller's stays open
                    opened.close()
            store.close()

    app = FastAPI(
        title="OpenAI Usage Tracker",
        version=__version__,
        summary="Who used what in a shared OpenAI organization, served from a local database.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind sign-in
    )
    from usage_tracker.web import (
        accounts,
        actions,
        alerts,
        api,
        limits,
        metrics,
        pages,
        people,
        security,
        signin,
        statements,
    )

    security.install(app, settings)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for part in (
        api,
        pages,
        signin,
        accounts,
        people,
        limits,
        statements,
        metrics,
        alerts,
        actions,
    ):
        app.include_router(part.router)
    app.include_router(alerts.pages)
    if settings.auth_mode == "oidc":
        from usage_tracker.web import oidc

        oidc.install(app, settings, _flow_secret(settings))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_who: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    _install_error_handlers(app)
    _document_errors_as_served(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of the settings in the environment and .env: what each worker process of
    ``usage-tracker serve`` (WORKERS > 1) runs."""
    from usage_tracker.settings import load_settings
    from usage_tracker.web.serving import tune_memory

    settings = load_settings()
    runtime.configure_logging(settings)
    tune_memory()
    return create_app(settings)


def _document_errors_as_served(app: FastAPI) -> None:
    """Invalid parameters are answered 400 with our error body (see _install_error_handlers),
    so the 422 that FastAPI documents by default would mislead API clients: drop it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _share_trouble(store: Store, connection: str) -> Callable[[str | None], None]:
    """What the syncing process's client of ``connection`` meets, written where the other
    workers and replicas read it for their health."""

    def record(words: str | None) -> None:
        try:
            with store.transaction() as conn:
                writes.note_trouble(conn, connection, words, int(time.time()))
        except StoreUnavailableError:
            pass  # health says the database's own trouble already

    return record


def _start_sync(state: AppState, feeds: list[Feed]) -> threading.Thread:
    settings, store = state.settings, state.store

    def sync() -> SyncReport:
        return sync_each(
            store,
            feeds,
            lambda f: sync_once(store, f.client, window=f.window, connection=f.connection),
        )

    def recent() -> SyncReport:
        return sync_each(
            store, feeds, lambda f: sync_recent(store, f.client, connection=f.connection)
        )

    thread = threading.Thread(
        target=run_forever,
        args=(sync, settings.sync_interval_seconds, state.stopping),
        kwargs={
            "status": state.loop,
            "recent": recent if settings.recent_sync_seconds else None,
            "recent_seconds": settings.recent_sync_seconds,
            "after": lambda: _after_sync(state),
        },
        name="sync",
        daemon=True,
    )
    thread.start()
    return thread


def _after_sync(state: AppState) -> None:
    """After every sync pass: the alerts, then the presets computed for the new data."""
    from usage_tracker.web.alerts import current_engine

    engine = current_engine(state)
    if engine is not None:
        engine.run()
    if state.actions is not None:
        state.actions.run()
    from usage_tracker.web.pages import warm

    try:
        warm(state)
    except StoreUnavailableError as e:  # the page will say so; the loop carries on
        log.warning("presets not computed: %s", e)
    except Exception:
        log.exception("presets not computed")


def _error(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "param": param}}, status_code=status, headers=headers
    )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/openapi.json", "/static/", "/metrics"))


def _reads_html(request: Request) -> bool:
    """A person opening a page in a browser (not a script, not a form's answer)."""
    return (
        _wants_html(request)
        and request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
    )


_TITLES = {403: "Not for your role", 404: "Not found", 405: "Not allowed"}


def _message_page(request: Request, status: int, message: str) -> Response:
    """An error as a page with the site's navigation (the JSON body is for scripts)."""
    from usage_tracker.web.auth import principal
    from usage_tracker.web.templating import templates

    try:
        who = principal(request)
    except (SignInRequired, StoreUnavailableError):
        who = None
    if status == 403 and who is not None:
        message = f"{message} You are signed in as {who.label}, a {who.role}; ask an admin."
    context = {
        "request": request,
        "version": __version__,
        "who": who,
        "status": status,
        "title": _TITLES.get(status, "Cannot show this page"),
        "message": message,
    }
    return templates.TemplateResponse(request, "message.html", context, status_code=status)


def _allow(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """A 405's ``Allow``, with HEAD wherever GET is (the guard answers HEAD as GET)."""
    if headers and "Allow" in headers:
        methods = [m.strip() for m in headers["Allow"].split(",")]
        if "GET" in methods and "HEAD" not in methods:
            methods.append("HEAD")
        return {**headers, "Allow": ", ".join(methods)}
    return dict(headers) if headers else None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        param = loc[0] if loc else None
        return _error(400, f"Invalid value for '{param}': {first.get('msg', 'invalid')}.", param)

    @app.exception_handler(ReportError)
    async def report_error(request: Request, exc: ReportError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.param)

    @app.exception_handler(UpstreamFailure)
    async def upstream_failure(request: Request, exc: UpstreamFailure) -> JSONResponse:
        return _error(502, str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        message = (
            "Too many bucket_width=1m requests are waiting on OpenAI; try again in a few "
            "seconds (or use 1h, served from the database)."
        )
        return _error(503, message, None, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StoreUnavailableError)
    async def store_down(request: Request, exc: StoreUnavailableError) -> Response:
        headers = {"Retry-After": "10"}
        if _wants_html(request):
            from usage_tracker.web.pages import unavailable_page

            return unavailable_page(request, str(exc), headers)
        return _error(503, str(exc), None, headers)

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        password_mode = app.state.settings.auth_mode in ("password", "oidc")
        if password_mode and _wants_html(request) and request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return _error(401, str(exc), None, {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _reads_html(request):
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(_message_page, request, exc.status_code, str(exc.detail))
        return _error(exc.status_code, str(exc.detail), None, _allow(exc.headers))

"""The state every request shares, built once at start-up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from usage_tracker.actions.engine import ActionEngine
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.people.names import KeyMappings
from usage_tracker.providers import ProviderClient
from usage_tracker.providers.connections import Connection
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.pools import PoolTable
from usage_tracker.settings import Settings
from usage_tracker.store import Store
from usage_tracker.sync import LoopStatus
from usage_tracker.web.cursors import CursorSigner
from usage_tracker.web.minute import MinuteGateway
from usage_tracker.web.results import Results
from usage_tracker.web.throttle import LoginThrottle


@dataclass
class AppState:
    """Everything a request may use, built once at start-up from the settings."""

    settings: Settings
    store: Store
    mappings: KeyMappings
    pools: PoolTable
    pool_error: str | None
    client: AdminClient | None
    minute: MinuteGateway
    cursors: CursorSigner
    prices_error: str | None = None
    csrf_key: bytes = b""
    """Derived from SESSION_SECRET (or the secret generated once and kept in the database)."""
    clock: Callable[[], float] = time.time
    """What "now" is: the wall clock, or a fixed time in tests."""
    stopping: threading.Event = field(default_factory=threading.Event)
    loop: LoopStatus = field(default_factory=LoopStatus)
    """How the background sync went (a database failure, an unexpected error)."""
    alerts: AlertEngine | None = None
    """Evaluates the alert rules after every sync and delivers what fired."""
    actions: ActionEngine | None = None
    """Records what budget rules ask to be done at a provider, and does it (after the alerts)."""
    clients: dict[str, ProviderClient] = field(default_factory=dict)
    """Every connection's client, by connection name (``client`` is the primary one's)."""
    connections: list[Connection] = field(default_factory=list)
    """The connections of the settings, read once at start-up."""
    results: Results = field(init=False)
    """Reports computed once per version of the data."""
    throttle: LoginThrottle = field(init=False)
    """Failed sign-ins, counted in the database on the wall clock (whatever ``clock`` says)."""

    def __post_init__(self) -> None:
        self.results = Results(
            self.store, self.mappings, max_bytes=self.settings.results_cache_mb << 20
        )
        self.throttle = LoginThrottle(self.store, time.time)


def app_state(request: Request) -> AppState:
    """The state of the app serving ``request`` (built at start-up, see ``create_app``)."""
    state: AppState = request.app.state.app_state
    return state


async def current_state(request: Request) -> AppState:
    """:func:`app_state` as a route's dependency (a coroutine: no trip to a worker thread)."""
    return app_state(request)

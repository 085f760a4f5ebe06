"""Builds the long-lived pieces (store, upstream client, sync) from one Settings object."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from usage_tracker.providers import ProviderClient
from usage_tracker.providers.connections import Connection, load_connections
from usage_tracker.providers.openai import AdminClient, RetryPolicy
from usage_tracker.providers.prices import Prices, PricesFileError
from usage_tracker.settings import Settings, SettingsError
from usage_tracker.store import Store
from usage_tracker.sync import Feed, SyncWindow

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from usage_tracker.actions.engine import ActionEngine
    from usage_tracker.alerts.engine import AlertEngine
    from usage_tracker.alerts.rules import AlertRules
    from usage_tracker.people.names import KeyMappings
    from usage_tracker.providers.openai.pools import PoolTable
    from usage_tracker.providers.writes import Writer


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "debug":
        # One line per upstream request is noise except when debugging (URLs only, never keys).
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    # The transport and the SDK log whole requests and responses, headers included, at debug;
    # a misbehaving upstream could echo the key in a header. upstream.client logs one line per
    # response instead (method, path, status, time, request id).
    # Apprise, and the requests/urllib3 it sends with, log whole webhook URLs (Slack's and
    # Discord's hold their tokens in the path) at debug.
    for noisy in ("httpcore2", "httpcore", "openai", "apprise", "urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.INFO)


def load_prices(settings: Settings) -> tuple[Prices, str | None]:
    """PRICES_FILE over genai-prices; when the file cannot be used, the library alone and why."""
    try:
        return Prices.load(settings.prices_file), None
    except PricesFileError as e:
        log.error("prices: %s; genai-prices alone is in use", e)
        return Prices(), f"{e}; genai-prices alone is in use"


def open_store(settings: Settings, prices: Prices | None = None) -> Store:
    """The store, its estimates made with ``prices`` (those of the settings when None)."""
    return Store.open(settings.database_url, prices or load_prices(settings)[0])


def connections(settings: Settings) -> list[Connection]:
    """Every connection of the settings (SettingsError naming what cannot be used)."""
    return load_connections(settings)


def primary(settings: Settings) -> Connection:
    """The first OpenAI connection: the one ``/api/usage`` answers for unless told which."""
    found = next((c for c in connections(settings) if c.provider == "openai"), None)
    if found is None:
        settings.admin_key()  # raises, saying which settings give a key
        raise SettingsError("no OpenAI connection is configured")
    return found


def pools_of(found: Sequence[Connection]) -> Connection | None:
    """Of the connections ``found``, the OpenAI one whose complimentary pools the dashboard
    and alerts watch: the primary one (None when there is none: the stored rows' pools)."""
    return next((c for c in found if c.provider == "openai"), None)


def open_client(
    settings: Settings,
    *,
    connection: Connection | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> AdminClient:
    """The client of ``connection`` (the primary one when None)."""
    connection = connection or primary(settings)
    timeout = timeout or settings.upstream_timeout_seconds
    if retry is None:
        # A failing upstream ends a sync pass in about four request timeouts (30 s at least).
        retry = RetryPolicy(trouble_budget=max(30.0, 4 * timeout))
    return AdminClient(connection.key, connection.base_url, timeout=timeout, retry=retry)


def open_reader(settings: Settings, connection: Connection) -> ProviderClient:
    """The client that reads ``connection``, of its provider."""
    if connection.provider == "anthropic":
        from usage_tracker.providers.anthropic import AnthropicClient

        return AnthropicClient(
            connection.key, connection.base_url, timeout=settings.upstream_timeout_seconds
        )
    return open_client(settings, connection=connection)


def feeds(
    settings: Settings,
    *,
    since: int | None = None,
    clients: Mapping[str, ProviderClient] | None = None,
) -> list[Feed]:
    """What the sync reads: every connection with its client (those of ``clients`` where
    given, else one opened here) and its window."""
    found = connections(settings)
    if not found:
        settings.admin_key()  # raises, saying which settings give a key
    clients = clients or {}
    return [
        Feed(
            c.name,
            clients.get(c.name) or open_reader(settings, c),
            sync_window(settings, since, connection=c),
        )
        for c in found
    ]


def sync_window(
    settings: Settings, since: int | None = None, *, connection: Connection | None = None
) -> SyncWindow:
    return SyncWindow(
        backfill_days=settings.backfill_days if connection is None else connection.backfill_days,
        lookback_hours=settings.sync_lookback_hours,
        costs_lookback_days=settings.costs_lookback_days,
        since=since,
        concurrency=settings.sync_concurrency,
    )


STORED_RULES = "the rules set on the Alerts page"


def alert_rules(
    settings: Settings, stored: Mapping[str, str] | None = None
) -> tuple[AlertRules, tuple[str, ...]]:
    """The rules: ALERTS_FILE when set, else those set on the Alerts page (``stored``, from
    :func:`usage_tracker.store.alerts.settings`), else the defaults; the channels: ALERT_URLS
    and those set on the page. Checked: SettingsError names the file, line and column."""
    from usage_tracker.alerts.channels import check_urls
    from usage_tracker.alerts.rules import AlertRulesError, load_rules, parse_rules
    from usage_tracker.store.alerts import CHANNEL, RULES

    stored = stored or {}
    try:
        if settings.alerts_file is None and RULES in stored:
            rules = parse_rules(stored[RULES], STORED_RULES)
        else:
            rules = load_rules(settings.alerts_file)
    except AlertRulesError as e:
        raise SettingsError(f"ALERTS_FILE: {e}" if settings.alerts_file else str(e)) from None
    added = [v for k, v in sorted(stored.items()) if k.startswith(CHANNEL)]
    try:
        page_urls = check_urls(tuple(added))
    except ValueError as e:
        raise SettingsError(f"a channel set on the Alerts page: {e}") from None
    return rules, tuple(dict.fromkeys([*settings.alert_url_list(), *page_urls]))


def alert_engine(
    settings: Settings,
    store: Store,
    *,
    rules: AlertRules,
    urls: tuple[str, ...],
    pools: PoolTable,
    mappings: KeyMappings,
    clock: Callable[[], float] = time.time,
) -> AlertEngine:
    """The alert engine over ``store``: names as of each evaluation (the mapping file and the
    People page may change meanwhile)."""
    from usage_tracker.alerts.engine import AlertEngine
    from usage_tracker.alerts.evaluate import Inputs
    from usage_tracker.reports import load_names

    base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    found = connections(settings)
    watched = pools_of(found)
    more = tuple(
        (c.name, c.usage_tier, c.sharing_projects)
        for c in found
        if c.provider == "openai" and c is not watched
    )

    def inputs() -> Inputs:
        return Inputs(
            store=store,
            names=load_names(store, mappings.current()),
            pools=pools,
            usage_tier=watched.usage_tier if watched else settings.usage_tier,
            sharing_projects=watched.sharing_projects if watched else settings.sharing_projects,
            base_url=base_url,
            connection=watched.name if watched else None,
            more_pools=more,
        )

    return AlertEngine(store, rules, urls, inputs, clock=clock)


WRITE_RETRY = RetryPolicy(max_retries=1, base_delay=0.5, max_delay=2.0, trouble_budget=None)
"""A write is tried twice at once; the actions retry it later with their own backoff."""


def writers(settings: Settings) -> dict[str, Callable[[], Writer]]:
    """Each connection with a write key: its name → how to open its writer."""
    found: dict[str, Callable[[], Writer]] = {}
    timeout = settings.upstream_timeout_seconds
    for c in connections(settings):
        if c.write_key is None:
            continue
        key: SecretStr = c.write_key
        if c.provider == "anthropic":
            from usage_tracker.providers.anthropic.writer import AnthropicWriter

            def anthropic_writer(key: SecretStr = key, url: str = c.base_url) -> Writer:
                return AnthropicWriter(key, url, timeout=timeout, max_retries=1)

            found[c.name] = anthropic_writer
        else:
            from usage_tracker.providers.openai.writer import OpenAIWriter

            def openai_writer(key: SecretStr = key, url: str = c.base_url) -> Writer:
                return OpenAIWriter(key, url, timeout=timeout, retry=WRITE_RETRY)

            found[c.name] = openai_writer
    return found


def action_engine(
    settings: Settings,
    store: Store,
    alerts: Callable[[], AlertEngine],
    *,
    clock: Callable[[], float] = time.time,
) -> ActionEngine:
    """The actions over ``store``, with the write keys of the settings' connections."""
    from usage_tracker.actions.engine import ActionEngine

    return ActionEngine(store, writers(settings), alerts, clock=clock)

"""Builds the long-lived pieces (store, upstream client, sync) from one Settings object."""

from __future__ import annotations

import logging

from usage_tracker.settings import Settings
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow
from usage_tracker.upstream import AdminClient, RetryPolicy


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
    for noisy in ("httpcore2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.INFO)


def open_store(settings: Settings) -> Store:
    return Store.open(settings.database_url)


def open_client(
    settings: Settings, *, retry: RetryPolicy | None = None, timeout: float | None = None
) -> AdminClient:
    return AdminClient(
        settings.admin_key(),
        settings.openai_base_url,
        timeout=timeout or settings.upstream_timeout_seconds,
        retry=retry,
    )


def sync_window(settings: Settings, since: int | None = None) -> SyncWindow:
    return SyncWindow(
        backfill_days=settings.backfill_days,
        lookback_hours=settings.sync_lookback_hours,
        costs_lookback_days=settings.costs_lookback_days,
        since=since,
    )

"""The ``bucket_width=1m`` path: the one kind of request that reaches OpenAI per view.

It must never stall the app. Identical requests share one upstream call and its answer for a
minute (single flight); at most ``max_in_flight`` distinct calls run at once and any further
one is refused at once with ``Busy`` (503 and ``Retry-After``) instead of holding a worker; a
call has a short total deadline with few retries; the table of answers is bounded. Upstream
cursors never leave the server bare: they are signed, so a client's ``page`` is one this server
handed out, and anything else is refused before it is forwarded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from usage_tracker.providers.errors import UpstreamError
from usage_tracker.providers.openai import AdminClient, RetryPolicy
from usage_tracker.reports import ReportError
from usage_tracker.web.cursors import CursorError, CursorSigner

MINUTE_RETRY = RetryPolicy(
    max_retries=1, base_delay=0.25, max_delay=1.0, max_retry_after=2.0, deadline=8.0
)
"""One retry, and never more than 8 s for a call with its retries (each attempt times out at
MINUTE_TIMEOUT_SECONDS)."""
MINUTE_TIMEOUT_SECONDS = 4.0


class Busy(Exception):
    """Too many distinct minute requests are waiting on OpenAI: try again shortly."""

    retry_after = 5


class UpstreamFailure(Exception):
    """OpenAI could not answer a request that must go upstream (502 with the reason)."""


Key = tuple[Any, ...]


@dataclass
class _Flight:
    done: threading.Event
    body: dict[str, Any] | None = None
    error: Exception | None = None


class MinuteGateway:
    def __init__(
        self,
        client: AdminClient | None,
        signer: CursorSigner,
        *,
        max_in_flight: int = 4,
        cache_seconds: float = 60.0,
        max_cached: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.signer = client, signer
        self.max_in_flight, self.cache_seconds, self.max_cached = (
            max_in_flight,
            cache_seconds,
            max_cached,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, tuple[float, dict[str, Any]]] = OrderedDict()
        self._flights: dict[Key, _Flight] = {}
        self.upstream_calls = 0

    def page(
        self,
        source: str,
        start: int,
        end: int | None,
        *,
        groups: Sequence[str],
        limit: int,
        page: str | None,
        shape: Callable[[Any], dict[str, Any]],
    ) -> dict[str, Any]:
        """One upstream page of 1m buckets, each result made by ``shape``; the body's
        ``next_page`` is a signed cursor for this query."""
        if self.client is None:
            raise ReportError(
                "bucket_width=1m reads OpenAI directly and no admin key is set.", "bucket_width"
            )
        fingerprint = f"1m:{source}:{start}:{end}:{','.join(groups)}:{limit}"
        upstream_page = None
        if page:
            try:
                upstream_page = self.signer.decode(page, fingerprint)
            except CursorError as e:
                raise ReportError(f"Invalid value for 'page': {e}.", "page") from None
        key: Key = (fingerprint, upstream_page)
        found, leader = self._join(key)
        if isinstance(found, dict):
            body = found
        else:
            if leader:
                self._fly(found, key, source, start, end, groups, limit, upstream_page, shape)
            elif not found.done.wait(MINUTE_RETRY.deadline or 8.0):
                raise Busy
            if found.error is not None:
                raise found.error
            assert found.body is not None
            body = dict(found.body)
        if body["next_page"]:
            body["next_page"] = self.signer.encode(body["next_page"], fingerprint)
        return body

    def _join(self, key: Key) -> tuple[_Flight | dict[str, Any], bool]:
        """A fresh cached answer; or the call in flight for ``key`` (to wait on); or a new one
        that this caller leads. Busy when the in-flight table is full."""
        now = self._clock()
        with self._lock:
            for old in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[old]
            hit = self._cache.get(key)
            if hit is not None:
                return dict(hit[1]), False
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            if len(self._flights) >= self.max_in_flight:
                raise Busy
            flight = self._flights[key] = _Flight(threading.Event())
            return flight, True

    def _fly(
        self,
        flight: _Flight,
        key: Key,
        source: str,
        start: int,
        end: int | None,
        groups: Sequence[str],
        limit: int,
        upstream_page: str | None,
        shape: Callable[[Any], dict[str, Any]],
    ) -> None:
        assert self.client is not None
        try:
            self.upstream_calls += 1
            buckets, cursor = self.client.usage_page(
                source,
                start,
                end,
                bucket_width="1m",
                group_by=list(groups),
                limit=limit,
                page=upstream_page,
            )
            flight.body = {
                "object": "page",
                "data": [
                    {
                        "object": "bucket",
                        "start_time": b.start_time,
                        "end_time": b.end_time,
                        "results": [shape(r) for r in b.results],
                    }
                    for b in buckets
                ],
                "has_more": cursor is not None,
                "next_page": cursor,
            }
        except UpstreamError as e:
            flight.error = UpstreamFailure(str(e))
        except Exception as e:
            flight.error = e
        finally:
            with self._lock:
                del self._flights[key]
                if flight.body is not None:
                    self._cache[key] = (self._clock() + self.cache_seconds, flight.body)
                    while len(self._cache) > self.max_cached:
                        self._cache.popitem(last=False)
            flight.done.set()

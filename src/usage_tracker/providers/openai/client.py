"""The only code that talks to OpenAI: the Organization Usage, Costs, projects, keys and users APIs.

Built on the official ``openai`` SDK's admin namespace. The SDK's own retries are switched off
(``max_retries=0``) and done here instead, so that every attempt is counted, the backoff is
bounded and testable, and every failure ends as one of the errors in :mod:`.errors`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai
import orjson
from pydantic import SecretStr

from usage_tracker.providers.base import SdkClient
from usage_tracker.providers.errors import (
    BadUpstreamResponseError,
    InvalidAdminKeyError,
    NotAdminKeyError,
    NotJsonError,
    RateLimitedError,
    RefusedDimensionError,
    RevokedAdminKeyError,
    SourceNotAvailableError,
    UpstreamError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
    scrub,
)
from usage_tracker.providers.openai.contract import (
    COSTS_DEFAULT_LIMIT,
    COSTS_GROUP_BY,
    COSTS_MAX_LIMIT,
    MAX_LIMIT,
    SOURCES,
    WIDTH_SECONDS,
    align_down,
    align_up,
)
from usage_tracker.providers.openai.records import (
    parse_api_key,
    parse_cost_result,
    parse_project,
    parse_rate_limit,
    parse_spend_alert,
    parse_spend_limit,
    parse_usage_result,
    parse_user,
)
from usage_tracker.providers.records import (
    DIMENSIONS,
    METRICS,
    ApiKey,
    CostBucket,
    Limit,
    Project,
    UsageBucket,
    User,
)

log = logging.getLogger(__name__)

PAGE_RESULTS = 20_000
"""The most results the sync lets a page of usage or costs hold (about 5 to 15 MB of JSON, 40
to 50 MB while parsed): past it, the rest is asked for in fewer buckets per request."""
DAY = WIDTH_SECONDS["1d"]
B = TypeVar("B", UsageBucket, CostBucket)
T = TypeVar("T")

LIST_LIMIT = 100
"""Page size for the projects, API keys and users lists."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; ``Retry-After`` wins when it is longer."""

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    """A longer ``Retry-After`` is not waited for: the call fails and the next sync tries again."""
    max_connect_retries: int = 2
    """A server that refuses connections (or a name that does not resolve) is usually a wrong
    OPENAI_BASE_URL or no network: say so in seconds instead of backing off for minutes."""
    deadline: float | None = None
    """Seconds one call may take with all its retries; none means only the retries bound it."""
    trouble_budget: float | None = 60.0
    """Seconds the upstream may keep failing, across every call of this client, before each
    call gives up at its first fault (until one succeeds again): a sync pass against a slow or
    failing upstream ends in about this long, not after every source's every retry."""

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt)
        backoff *= 0.5 + random.random() / 2
        return max(backoff, retry_after or 0.0)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


class _Retryable(Exception):
    def __init__(
        self,
        what: str,
        retry_after: float | None = None,
        status: int | None = None,
        *,
        connect: bool = False,
    ):
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after
        self.status = status
        self.connect = connect


class NotJsonResponseError(openai.OpenAIError):
    """A 2xx answer that is not JSON: a mistyped base URL, a captive portal, a proxy's page.
    Raised from the HTTP client's response hook; the SDK passes OpenAIErrors through as-is."""

    def __init__(self, content_type: str) -> None:
        super().__init__(content_type)
        self.content_type = content_type


_STARTED = "usage_tracker.started"


def _note_start(request: httpx2.Request) -> None:
    request.extensions[_STARTED] = time.monotonic()


def _check_and_log(response: httpx2.Response) -> None:
    """One debug line per upstream response: method, path, status, time and request id, never
    the headers (a misbehaving upstream could echo the key in one). Refuses a non-JSON 2xx."""
    request = response.request
    elapsed = (time.monotonic() - request.extensions.get(_STARTED, time.monotonic())) * 1000
    log.debug(
        "%s %s -> %d (%.0f ms, request id %s)",
        request.method,
        request.url.path,
        response.status_code,
        elapsed,
        response.headers.get("x-request-id", "-"),
    )
    content_type = response.headers.get("content-type", "")
    if response.is_success and "json" not in content_type.lower():
        raise NotJsonResponseError(content_type.split(";")[0].strip() or "no content type")


class AdminClient(SdkClient):
    """Reads an organization's usage, costs and names.

    Every method pages to the end and retries transient faults; each raises only
    :class:`~usage_tracker.providers.errors.UpstreamError` subclasses. ``requests`` and
    ``retries`` count attempts per endpoint (``"completions"``, ``"costs"``, ``"projects"``…).
    """

    provider = "openai"
    sources: tuple[str, ...] = (*SOURCES, "costs")

    def __init__(
        self,
        admin_key: SecretStr | str,
        base_url: str = "https://api.openai.com/v1",
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http_client: httpx2.Client | None = None,
        page_results: int = PAGE_RESULTS,
    ) -> None:
        key = admin_key.get_secret_value() if isinstance(admin_key, SecretStr) else admin_key
        self._key = key
        self._page_results = page_results
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._base_url = base_url
        if http_client is None:
            http_client = openai.DefaultHttpx2Client()
        hooks = http_client.event_hooks
        hooks["request"] = [*hooks["request"], _note_start]
        hooks["response"] = [*hooks["response"], _check_and_log]
        http_client.event_hooks = hooks
        self._sdk = openai.OpenAI(
            admin_api_key=key,
            api_key="unused",  # the admin endpoints authenticate with admin_api_key only
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )
        super().__init__(self._sdk)
        self.retries: Counter[str] = Counter()
        self._paused_until = 0.0
        self._paused_by = 0
        """A 429 holds back every thread using this client, not only the one that got it (which
        waits out the delay itself)."""

    # -- usage and costs -------------------------------------------------------------------

    def usage_pages(
        self,
        source: str,
        start_time: int,
        end_time: int,
        *,
        bucket_width: str = "1h",
        group_by: Sequence[str] | None = None,
        page: str | None = None,
        **filters: Any,
    ) -> Iterator[tuple[list[UsageBucket], str | None]]:
        """Each page of ``source`` usage in [start, end) as (buckets, next cursor).

        The window is widened to whole UTC buckets; ``group_by`` defaults to every dimension the
        source allows; each request asks for the most buckets the width allows. Following the
        cursor until ``has_more`` is false is done here; ``page`` resumes from a cursor.
        """
        spec = SOURCES[source]
        start, end = align_down(start_time, bucket_width), align_up(end_time, bucket_width)
        params: dict[str, Any] = {
            "start_time": start,
            "end_time": end,
            "bucket_width": bucket_width,
            "group_by": list(spec.group_by if group_by is None else group_by),
            "limit": MAX_LIMIT[bucket_width],
            **{k: v for k, v in filters.items() if v is not None},
        }
        endpoint = getattr(self._sdk.admin.organization.usage.with_raw_response, source)

        def parse(raw: Mapping[str, Any]) -> list[UsageBucket]:
            if new := _new_fields(raw):
                with self._lock:
                    self.new_fields.setdefault(source, set()).update(new)
            return _usage_buckets(source, raw)

        yield from self._pages(
            source, endpoint, params, parse, width=WIDTH_SECONDS[bucket_width], cursor=page
        )

    def usage_page(
        self,
        source: str,
        start_time: int,
        end_time: int | None,
        *,
        bucket_width: str,
        group_by: Sequence[str],
        limit: int,
        page: str | None = None,
    ) -> tuple[list[UsageBucket], str | None]:
        """Exactly one upstream page, parameters passed through unchanged (no alignment)."""
        params: dict[str, Any] = {
            "start_time": start_time,
            "bucket_width": bucket_width,
            "group_by": list(group_by),
            "limit": limit,
        }
        if end_time is not None:
            params["end_time"] = end_time
        if page:
            params["page"] = page
        endpoint = getattr(self._sdk.admin.organization.usage.with_raw_response, source)
        raw = self._call(source, endpoint, **params)
        buckets = _usage_buckets(source, raw)
        return buckets, raw.get("next_page") if raw.get("has_more") else None

    def usage(
        self, source: str, start_time: int, end_time: int, **kwargs: Any
    ) -> Iterator[UsageBucket]:
        """Every bucket of ``source`` in [start, end); see :meth:`usage_pages`."""
        for buckets, _ in self.usage_pages(source, start_time, end_time, **kwargs):
            yield from buckets

    def cost_pages(
        self,
        start_time: int,
        end_time: int,
        *,
        group_by: Sequence[str] = COSTS_GROUP_BY,
        **filters: Any,
    ) -> Iterator[list[CostBucket]]:
        """Daily cost buckets in [start, end), grouped by every dimension by default: the first
        request asks for a week of days (OpenAI's own default page), each next one for as many
        days as keep a page within the client's ``page_results`` (see :meth:`_pages`)."""
        start, end = align_down(start_time, "1d"), align_up(end_time, "1d")
        params: dict[str, Any] = {
            "start_time": start,
            "end_time": end,
            "bucket_width": "1d",
            "group_by": list(group_by),
            "limit": COSTS_MAX_LIMIT,
            **{k: v for k, v in filters.items() if v is not None},
        }
        endpoint = self._sdk.admin.organization.usage.with_raw_response.costs
        pages = self._pages(
            "costs", endpoint, params, _cost_buckets, width=DAY, span=COSTS_DEFAULT_LIMIT
        )
        for buckets, _cursor in pages:
            yield buckets

    def costs(self, start_time: int, end_time: int, **kwargs: Any) -> Iterator[CostBucket]:
        for buckets in self.cost_pages(start_time, end_time, **kwargs):
            yield from buckets

    # -- names -----------------------------------------------------------------------------

    def projects(self) -> list[Project]:
        """Every project, archived ones included."""
        org = self._sdk.admin.organization
        return [
            parse_project(p)
            for p in self._listed("projects", org.projects.list, include_archived=True)
        ]

    def api_keys(self, project_id: str) -> list[ApiKey]:
        """Every API key of a project, whether or not its owner still has access."""
        org = self._sdk.admin.organization
        return [
            parse_api_key(project_id, k)
            for k in self._listed(
                "api_keys",
                org.projects.api_keys.list,
                project_id,
                owner_project_access="any",
            )
        ]

    def users(self) -> list[User]:
        return [
            parse_user(u) for u in self._listed("users", self._sdk.admin.organization.users.list)
        ]

    # -- limits ------------------------------------------------------------------------------

    def limits(self, project_ids: Sequence[str]) -> list[Limit]:
        """The organization's hard spend limit and spend alerts, then each project's, and each
        project's rate limits per model. A spend limit that is not set is none (OpenAI answers
        404 for it)."""
        org = self._sdk.admin.organization
        found = self._spend_limit(None, org.spend_limit.retrieve)
        found += [parse_spend_alert(None, a) for a in self._listed("limits", org.spend_alerts.list)]
        for project_id in project_ids:
            found += self._spend_limit(project_id, org.projects.spend_limit.retrieve, project_id)
            alerts = self._listed("limits", org.projects.spend_alerts.list, project_id)
            found += [parse_spend_alert(project_id, a) for a in alerts]
            rates = self._listed("limits", org.projects.rate_limits.list_rate_limits, project_id)
            found += [parse_rate_limit(project_id, r) for r in rates]
        return found

    def _spend_limit(
        self, project_id: str | None, endpoint: Callable[..., Any], *args: str
    ) -> list[Limit]:
        try:
            return [parse_spend_limit(project_id, self._call("limits", endpoint, *args))]
        except BadUpstreamResponseError as e:
            if e.status_code == 404:
                return []
            raise

    # -- paging, retries and error translation ---------------------------------------------

    def _pages(
        self,
        label: str,
        endpoint: Callable[..., Any],
        params: dict[str, Any],
        parse: Callable[[Mapping[str, Any]], list[B]],
        *,
        width: int,
        span: int | None = None,
        cursor: str | None = None,
    ) -> Iterator[tuple[list[B], str | None]]:
        """Each page of the bucketed query ``params`` (``start_time``, ``end_time`` and
        ``limit``, the most buckets a page may hold), parsed, with its next cursor. The range
        is asked whole and its cursor followed while pages hold at most ``page_results``
        results; after one that holds more (from the first page, when ``span`` buckets are
        given), the rest is asked in windows of as many buckets of ``width`` seconds as the
        busiest bucket so far fits in it (1 to the limit). So a page's memory does not grow
        with the organization, and a small one's backfill still makes the fewest requests.
        Each response is let go as soon as it is parsed."""
        most, end, at = int(params["limit"]), int(params["end_time"]), int(params["start_time"])
        busiest = 0  # the most results one bucket has held so far
        buckets: list[B] = []
        while at < end:
            hi = end if span is None else min(end, at + span * width)
            query = {**params, "start_time": at, "end_time": hi, "limit": span or most}
            while True:
                raw = self._call(label, endpoint, **query, **({"page": cursor} if cursor else {}))
                more, cursor = bool(raw.get("has_more")), raw.get("next_page")
                buckets = parse(raw)
                del raw  # the parsed page is what is kept
                yield buckets, cursor if more else None
                if more and (not isinstance(cursor, str) or not cursor):
                    raise BadUpstreamResponseError(
                        f"{label}: has_more is true but next_page is empty"
                    )
                results = sum(len(b.results) for b in buckets)
                busiest = max([busiest, *(len(b.results) for b in buckets)])
                if not more or (buckets and results > self._page_results):
                    break
            cursor = None
            if span is not None or results > self._page_results:
                span = max(1, min(most, self._page_results // busiest)) if busiest else most
            at = buckets[-1].end_time if more else hi

    def _listed(
        self, label: str, endpoint: Callable[..., Any], *args: Any, **params: Any
    ) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            extra = {} if after is None else {"after": after}
            raw = self._call(label, endpoint, *args, limit=LIST_LIMIT, **params, **extra)
            items = raw.get("data")
            if not isinstance(items, list):
                raise BadUpstreamResponseError(f"{label}: 'data' is not a list")
            yield from items
            if not raw.get("has_more") or not items:
                return
            after = raw.get("last_id") or items[-1].get("id")

    def _call(self, label: str, endpoint: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One upstream call as a plain dict, retried on transient faults."""
        policy = self._retry
        started = time.monotonic()
        for attempt in range(policy.max_retries + 1):
            self._wait_if_paused()
            with self._lock:
                self.requests[label] += 1
            try:
                result = self._attempt(endpoint, *args, **kwargs)
            except _Retryable as fault:
                delay = policy.delay(attempt, fault.retry_after)
                what = f"cannot connect to {fault.what}" if fault.connect else fault.what
                self._in_trouble(fault, what)
                if self._give_up(fault, attempt, time.monotonic() - started + delay):
                    raise self._exhausted(fault, attempt + 1) from None
                log.warning("%s: %s; retrying in %.2f s", label, what, delay)
                with self._lock:
                    self.retries[label] += 1
                    until = time.monotonic() + delay
                    if fault.status == 429 and until > self._paused_until:
                        self._paused_until, self._paused_by = until, threading.get_ident()
                self._sleep(delay)
            else:
                log.debug("%s: %s ok", label, kwargs.get("start_time", ""))
                self._set_trouble(None)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_if_paused(self) -> None:
        with self._lock:
            mine = self._paused_by == threading.get_ident()
            wait = self._paused_until - time.monotonic()
        if wait > 0 and not mine:
            self._sleep(wait)

    def _in_trouble(self, fault: _Retryable, what: str) -> None:
        if fault.status == 429:
            words = "OpenAI is rate-limiting requests (429); retrying"
        elif fault.connect:
            words = f"OpenAI is unreachable ({what}); retrying"
        else:
            words = f"OpenAI is failing ({what}); retrying"
        self._set_trouble(words)

    def _give_up(self, fault: _Retryable, attempt: int, elapsed_after_delay: float) -> bool:
        policy = self._retry
        since = self._trouble_since
        return (
            attempt >= (policy.max_connect_retries if fault.connect else policy.max_retries)
            or (fault.retry_after or 0) > policy.max_retry_after
            or (policy.deadline is not None and elapsed_after_delay > policy.deadline)
            or (
                policy.trouble_budget is not None
                and since is not None
                and time.monotonic() - since > policy.trouble_budget
            )
        )

    def _attempt(self, endpoint: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # The SDK builds the request, authenticates and raises typed HTTP errors. Usage and cost
        # pages are read raw (``with_raw_response``) and parsed here: the SDK's union of result
        # models coerces silently and cannot say which field is malformed. The name lists (plain
        # models, no unions; the SDK ignores with_raw_response for them) are turned back to dicts.
        try:
            response = endpoint(*args, **kwargs)
            http = getattr(response, "http_response", None)
            # orjson: the sync decodes a few hundred MB of these a year, at twice the speed.
            if http is not None:
                raw = orjson.loads(http.read())
            else:
                raw = response.to_dict(warnings=False)
        except openai.RateLimitError as e:
            raise _Retryable(
                "429 rate limited", retry_after_seconds(e.response.headers), 429
            ) from None
        except openai.InternalServerError as e:
            raise _Retryable(f"HTTP {e.status_code}", None, e.status_code) from None
        except openai.APITimeoutError:
            raise _Retryable("timed out") from None
        except openai.APIConnectionError as e:
            if isinstance(e.__cause__, httpx2.ConnectError):
                host = httpx2.URL(self._base_url).host
                raise _Retryable(host, connect=True) from None
            raise _Retryable("connection failed") from None
        except json.JSONDecodeError:
            raise _Retryable("truncated or malformed response body") from None
        except NotJsonResponseError as e:
            raise NotJsonError(e.content_type) from None
        except openai.APIStatusError as e:
            raise self._translate_status(e) from None
        except openai.OpenAIError as e:
            raise BadUpstreamResponseError(scrub(str(e), self._key)) from None
        if not isinstance(raw, dict):
            raise BadUpstreamResponseError("expected a JSON object")
        return raw

    def _translate_status(self, e: openai.APIStatusError) -> UpstreamError:
        message = _error_message(e.body)
        if "missing scopes" in message.lower() or e.status_code == 403:
            return NotAdminKeyError(e.status_code)
        if e.status_code == 401:
            if "revoked" in message.lower():
                return RevokedAdminKeyError()
            return InvalidAdminKeyError()
        if e.status_code == 404 and "/organization/usage/" in str(e.request.url):
            return SourceNotAvailableError()
        if e.status_code == 400 and "group_by" in message:
            return RefusedDimensionError(_named_dimension(message), scrub(message, self._key))
        return BadUpstreamResponseError(
            f"HTTP {e.status_code}: {scrub(message, self._key)}", e.status_code
        )

    @staticmethod
    def _exhausted(fault: _Retryable, attempts: int) -> UpstreamError:
        if fault.connect:
            return UpstreamUnreachableError(fault.what, attempts)
        if fault.status == 429:
            return RateLimitedError(fault.retry_after, attempts)
        if fault.status is None and "truncated" in fault.what:
            return BadUpstreamResponseError(f"{fault.what}, {attempts} times")
        return UpstreamUnavailableError(fault.what, attempts, fault.status)


def _named_dimension(message: str) -> str | None:
    """The dimension a 400 about ``group_by`` names ("Invalid value for 'group_by':
    'api_source'. Supported values are: …"): the first quoted one, if any."""
    quoted = [q for q in re.findall(r"'([A-Za-z_]+)'", message) if q in DIMENSIONS]
    return quoted[0] if quoted else None


def _error_message(body: object) -> str:
    """The message of an OpenAI error body, whose ``error`` may be an object or a bare string."""
    if isinstance(body, str):
        return body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, str):
            return inner
        if isinstance(inner, Mapping):
            return str(inner.get("message") or "")
    return ""


KNOWN_FIELDS = frozenset({"object", *METRICS, *DIMENSIONS})
"""What a usage result may hold that this version reads; anything else is a new field."""


def _new_fields(raw: Mapping[str, Any]) -> set[str]:
    return {
        str(field)
        for bucket in raw.get("data") or ()
        if isinstance(bucket, Mapping)
        for result in bucket.get("results") or ()
        if isinstance(result, Mapping)
        for field in result
        if field not in KNOWN_FIELDS
    }


def _usage_buckets(source: str, raw: Mapping[str, Any]) -> list[UsageBucket]:
    return [
        UsageBucket(
            b["start_time"],
            b["end_time"],
            tuple(
                parse_usage_result(source, b["start_time"], b["end_time"], r) for r in b["results"]
            ),
        )
        for b in _buckets(raw)
    ]


def _cost_buckets(raw: Mapping[str, Any]) -> list[CostBucket]:
    return [
        CostBucket(
            b["start_time"],
            b["end_time"],
            tuple(parse_cost_result(b["start_time"], b["end_time"], r) for r in b["results"]),
        )
        for b in _buckets(raw)
    ]


def _buckets(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    data = raw.get("data")
    if raw.get("object") != "page" or not isinstance(data, list):
        raise BadUpstreamResponseError("expected a page of buckets")
    for bucket in data:
        if not (
            isinstance(bucket, dict)
            and isinstance(bucket.get("start_time"), int)
            and isinstance(bucket.get("end_time"), int)
            and isinstance(bucket.get("results"), list)
        ):
            raise BadUpstreamResponseError("a bucket lacks start_time, end_time or results")
    return data

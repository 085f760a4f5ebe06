"""Anthropic's Admin API, read through the official ``anthropic`` SDK: Claude token usage per
hour and billed cost per day (the usage and cost analytics reports), and the names of API keys,
users and workspaces, turned into the tracker's records.

What the figures mean here (the tracker's, DESIGN §13): ``input_tokens`` is every input token
(uncached + cache reads + cache writes), ``input_cached_tokens`` the cache reads,
``input_cache_write_tokens`` the cache writes (5-minute and 1-hour), ``output_tokens`` the
output. A workspace is the tracker's project; a usage row's user is the user the request is
attributed to. Everything is stored as the source ``messages``. Cost is in cents upstream; it is
stored in dollars, per key, workspace and model.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import anthropic
from pydantic import SecretStr

from usage_tracker.providers.base import SdkClient
from usage_tracker.providers.errors import (
    AdminKeyError,
    BadUpstreamResponseError,
    RateLimitedError,
    UpstreamError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
)
from usage_tracker.providers.records import (
    ANTHROPIC_SOURCES,
    DIMENSIONS,
    METRICS,
    ApiKey,
    CostBucket,
    CostResult,
    Limit,
    Project,
    UsageBucket,
    UsageResult,
    User,
)

log = logging.getLogger(__name__)

HOUR, DAY = 3600, 86400
MESSAGES = ANTHROPIC_SOURCES[0]
COSTS = "costs"
WINDOW_DAYS = 7
"""Usage is asked for a week of hours at a time (the API allows 31 days): a week is a page."""
COST_WINDOW_DAYS = 31
USAGE_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "actor")
COST_GROUP_BY = ("api_key_id", "workspace_id", "model")
R = TypeVar("R", UsageResult, CostResult)
DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicAdminKeyError(AdminKeyError):
    def __init__(self, status_code: int) -> None:
        super().__init__(
            f"Anthropic refused the admin key ({status_code}). Check the Anthropic connection's "
            "key (ANTHROPIC_ADMIN_KEY, or the key its CONNECTIONS_FILE entry names): an Admin "
            "API key starts with sk-ant-admin01- and is made on the Console's Admin keys page.",
            status_code=status_code,
        )


REPORTS_FROM = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
"""The first day of Anthropic's usage and cost reports (facts/anthropic-admin-api.md)."""


class AnthropicClient(SdkClient):
    """Reads one Anthropic organization. Each method reads to the end and raises only
    :class:`~usage_tracker.providers.errors.UpstreamError` subclasses; the SDK retries
    transient faults (429, 5xx, dropped connections) with its own backoff."""

    provider = "anthropic"
    sources: tuple[str, ...] = (MESSAGES, COSTS)

    def __init__(
        self,
        admin_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
    ) -> None:
        key = admin_key.get_secret_value() if isinstance(admin_key, SecretStr) else admin_key
        self._host = base_url.split("//", 1)[-1].split("/", 1)[0]
        self._sdk = anthropic.Anthropic(
            api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        super().__init__(self._sdk)
        self._keys_lock = threading.Lock()
        self._keys: dict[str, list[ApiKey]] | None = None

    # -- usage and cost ---------------------------------------------------------------------

    def usage_pages(
        self,
        source: str,
        start_time: int,
        end_time: int,
        *,
        bucket_width: str = "1h",
        group_by: Sequence[str] | None = None,
        page: str | None = None,
    ) -> Iterator[tuple[list[UsageBucket], str | None]]:
        """A week of hours at a time, as hourly buckets (empty hours too), every page of
        rows of the week read first."""
        del group_by, page  # the dimensions are this provider's own; no cursor is resumed
        if source != MESSAGES or bucket_width != "1h":
            raise BadUpstreamResponseError(f"Anthropic has no {bucket_width} {source} usage")
        start = start_time - start_time % HOUR
        end = -(-end_time // HOUR) * HOUR
        for lo in range(start, end, WINDOW_DAYS * DAY):
            hi = min(end, lo + WINDOW_DAYS * DAY)
            results: dict[int, list[UsageResult]] = {t: [] for t in range(lo, hi, HOUR)}
            for result in self._report("usage", lo, hi, "1h", USAGE_GROUP_BY, parse=_usage_result):
                results.setdefault(result.start_time, []).append(result)
            buckets = [
                UsageBucket(t, t + HOUR, tuple(results[t])) for t in sorted(results) if t < hi
            ]
            yield buckets, None

    def cost_pages(self, start_time: int, end_time: int) -> Iterator[list[CostBucket]]:
        """Billed cost per UTC day, per key, workspace and model, 31 days at a time."""
        start = start_time - start_time % DAY
        end = -(-end_time // DAY) * DAY
        for lo in range(start, end, COST_WINDOW_DAYS * DAY):
            hi = min(end, lo + COST_WINDOW_DAYS * DAY)
            days: dict[int, list[CostResult]] = {t: [] for t in range(lo, hi, DAY)}
            for result in self._report("cost", lo, hi, "1d", COST_GROUP_BY, parse=_cost_result):
                days.setdefault(result.start_time, []).append(result)
            yield [CostBucket(t, t + DAY, tuple(days[t])) for t in sorted(days) if t < hi]

    def _report(
        self,
        kind: str,
        start: int,
        end: int,
        width: str,
        group_by: Sequence[str],
        *,
        parse: Callable[[Any], R],
    ) -> list[R]:
        """Every row of ``kind`` over [start, end), each ``parse``d as its page arrives (the
        SDK's objects of a page are let go before the next is asked for). Anthropic keeps
        these reports from 2026-01-01 and for the last 365 days only, and refuses a request
        that starts earlier: before then there is nothing to read (the buckets stay empty)."""
        step = HOUR if width == "1h" else DAY
        floor = max(REPORTS_FROM, -(-(int(time.time()) - 365 * DAY) // step) * step + step)
        if end <= floor:
            return []
        start = max(start, floor)
        endpoint = getattr(self._sdk.beta.organization.analytics, kind)
        page = self._call(
            kind,
            lambda: endpoint.list(
                starting_at=_iso(start),
                ending_at=_iso(end),
                time_bucket_width=width,
                group_by=list(group_by),
                limit=1000,
            ),
        )
        items: list[R] = []
        while True:
            items.extend(map(parse, page.data))
            if not page.has_next_page():
                return items
            page = self._call(kind, page.get_next_page)

    # -- names -------------------------------------------------------------------------------

    def projects(self) -> list[Project]:
        """Workspaces, archived ones too (a workspace is the tracker's project)."""
        listed = self._call(
            "workspaces",
            lambda: list(self._sdk.beta.organization.workspaces.list(include_archived=True)),
        )
        self._keys = None  # the keys are listed again with the next round of names
        return [
            Project(
                id=w.id,
                name=w.name,
                created_at=_ts(w.created_at),
                archived_at=_ts(w.archived_at),
                status="archived" if w.archived_at is not None else "active",
            )
            for w in listed
        ]

    def api_keys(self, project_id: str) -> list[ApiKey]:
        """The keys of one workspace (every key is listed once, then shared out)."""
        with self._keys_lock:  # the first caller lists them, the others wait for its list
            if self._keys is None:
                self._keys = self._list_keys()
            return list(self._keys.get(project_id, []))

    def _list_keys(self) -> dict[str, list[ApiKey]]:
        keys = self._call("api_keys", lambda: list(self._sdk.beta.organization.api_keys.list()))
        users = {u.id: u for u in self.users()}
        out: dict[str, list[ApiKey]] = {}
        for k in keys:
            scope = k.scope
            workspace = getattr(scope, "workspace_id", None) or ""
            principal = k.principal
            owner = getattr(principal, "user_id", None) or getattr(
                principal, "service_account_id", None
            )
            owner_type = (
                "service_account" if getattr(principal, "service_account_id", None) else "user"
            )
            if owner is None and k.created_by is not None:
                owner, owner_type = k.created_by.id, k.created_by.type
            person = users.get(owner or "")
            out.setdefault(workspace, []).append(
                ApiKey(
                    id=k.id,
                    project_id=workspace,
                    name=k.name,
                    redacted_value=k.partial_key_hint,
                    created_at=_ts(k.created_at),
                    last_used_at=None,
                    owner_type=owner_type,
                    owner_id=owner,
                    owner_name=person.name if person else None,
                    owner_email=person.email if person else None,
                )
            )
        return out

    def users(self) -> list[User]:
        listed = self._call("users", lambda: list(self._sdk.beta.organization.users.list()))
        return [User(id=u.id, name=u.name, email=u.email, role=str(u.role)) for u in listed]

    def limits(self, project_ids: Sequence[str]) -> list[Limit]:
        """Each key's status (inactive: its requests are refused), not archived ones. No spend
        limit: Anthropic's Admin API reports those for Claude Enterprise organizations only
        (``spend_limits/effective``), not for the Console organizations whose API keys the
        tracker reads; the page says they are not available, rather than none."""
        del project_ids
        keys = self._call("api_keys", lambda: list(self._sdk.beta.organization.api_keys.list()))
        return [
            Limit(
                kind="key_status",
                project_id=getattr(k.scope, "workspace_id", None) or None,
                ident=k.id,
                enforcing=k.status == "inactive",
            )
            for k in keys
            if k.status != "archived"
        ]

    # -- calls -------------------------------------------------------------------------------

    def _call(self, label: str, call: Callable[[], Any]) -> Any:
        with self._lock:
            self.requests[label] += 1
        started = time.monotonic()
        try:
            result = call()
        except anthropic.AuthenticationError as e:
            raise self._failed(AnthropicAdminKeyError(e.status_code)) from None
        except anthropic.PermissionDeniedError as e:
            raise self._failed(AnthropicAdminKeyError(e.status_code)) from None
        except anthropic.RateLimitError:
            raise self._failed(RateLimitedError(None, 1)) from None
        except anthropic.APIConnectionError:
            raise self._failed(UpstreamUnreachableError(self._host, 1)) from None
        except anthropic.APIStatusError as e:
            if e.status_code >= 500:
                raise self._failed(UpstreamUnavailableError(f"HTTP {e.status_code}", 1)) from None
            raise self._failed(
                BadUpstreamResponseError(f"Anthropic answered {e.status_code}: {e.message}")
            ) from None
        log.debug("anthropic %s answered in %.2f s", label, time.monotonic() - started)
        self._set_trouble(None)
        return result

    def _failed(self, error: UpstreamError) -> UpstreamError:
        self._set_trouble(str(error))
        return error


# -- normalisation ----------------------------------------------------------------------------


def _usage_result(item: Any) -> UsageResult:
    """One analytics usage row as a tracker result of the source ``messages``."""
    usage, group = item.usage, item.group
    writes = usage.cache_creation.ephemeral_5m_input_tokens + (
        usage.cache_creation.ephemeral_1h_input_tokens
    )
    read = usage.cache_read_input_tokens
    metrics = dict.fromkeys(METRICS, 0)
    metrics.update(
        input_tokens=usage.uncached_input_tokens + read + writes,
        input_cached_tokens=read,
        input_uncached_tokens=usage.uncached_input_tokens,
        input_cache_write_tokens=writes,
        output_tokens=usage.output_tokens,
        num_model_requests=usage.requests or 0,
    )
    actor = group.actor
    values = {
        "project_id": group.workspace_id or "",
        "user_id": getattr(actor, "user_id", None),
        "api_key_id": group.api_key_id,
        "model": group.model,
        "service_tier": group.service_tier,
        "batch": group.service_tier == "batch",
    }
    start = _ts(item.starting_at) or 0
    return UsageResult(
        MESSAGES,
        start,
        _ts(item.ending_at) or start + HOUR,
        tuple(values.get(d) for d in DIMENSIONS),
        metrics,
    )


def _cost_result(item: Any) -> CostResult:
    group, cost = item.group, item.cost
    try:
        amount = Decimal(cost.amount) / 100  # cents as a decimal string
    except InvalidOperation:
        raise BadUpstreamResponseError(f"a cost amount is not a number: {cost.amount!r}") from None
    model = group.model
    start = _ts(item.starting_at) or 0
    return CostResult(
        start_time=start,
        end_time=_ts(item.ending_at) or start + DAY,
        project_id=group.workspace_id or "",
        line_item=f"{model}, tokens" if model else "other",
        api_key_id=group.api_key_id,
        amount=amount,
        currency=cost.currency,
        quantity=None,
        quantity_unit=None,
    )


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())

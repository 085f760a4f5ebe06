"""The simulated Anthropic Admin API: the same synthetic company as the OpenAI simulator, seen
through Anthropic's contract (the types of the pinned ``anthropic`` SDK, field for field).

The company's completions traffic is its Claude traffic here: each OpenAI key has an Anthropic
twin (``apikey_…``) owned by the same person, each project is a workspace (``wrkspc_…``), and
each model maps to one Claude model. Served: the usage and cost analytics reports
(``/v1/organizations/analytics/usage`` and ``/cost``, beta header required, at most 31 days
per request, starting no earlier than 2026-01-01), API keys, users and workspaces. Costs are
in cents as decimal strings, as Anthropic sends them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .app import ApiError, Query, Receive, Scope, Send, _header, _lifespan
from .org import Event, Organization, SimKey

BETA = "analytics-usage-cost-2026-08-24"
EARLIEST = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
MAX_RANGE = 31 * 86400
WIDTHS = {"1d": 86400, "1h": 3600, "1m": 60}
USAGE_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "actor")
COST_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier")
CLAUDE = ("claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-8")
PRICES = {  # USD per 1M tokens: input, 5-minute cache write, cache read, output
    "claude-opus-4-8": (Decimal(5), Decimal("6.25"), Decimal("0.50"), Decimal(25)),
    "claude-sonnet-4-6": (Decimal(3), Decimal("3.75"), Decimal("0.30"), Decimal(15)),
    "claude-haiku-4-5-20251001": (Decimal(1), Decimal("1.25"), Decimal("0.10"), Decimal(5)),
}
DEFAULT_ADMIN_KEY = "sk-ant-admin01-simulator"


def claude_model(openai_model: str) -> str:
    """The Claude model an OpenAI model's traffic becomes (stable: a sum of its letters)."""
    return CLAUDE[sum(map(ord, openai_model)) % len(CLAUDE)]


def key_id(key: str) -> str:
    return "apikey_" + key.removeprefix("key_")


def workspace_id(project: str) -> str:
    return "wrkspc_" + project.removeprefix("proj_")


def user_id(user: str) -> str:
    return "user_" + user.removeprefix("user-")


@dataclass(frozen=True)
class Row:
    """One completions event as Anthropic reports it."""

    ts: int
    group: dict[str, Any]
    uncached: int
    cache_read: int
    cache_write: int
    output: int
    requests: int

    @property
    def cents(self) -> Decimal:
        price_in, write, read, price_out = PRICES[self.group["model"]]
        usd = (
            self.uncached * price_in
            + self.cache_write * write
            + self.cache_read * read
            + self.output * price_out
        ) / 1_000_000
        if self.group["service_tier"] == "batch":  # the Message Batches API: half price
            usd /= 2
        return usd * 100


class AnthropicOrganization:
    """The company of an :class:`Organization`, as Anthropic would report it."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.keys = {k.id: k for k in org.keys}

    def rows(self, start: int, end: int) -> Iterator[Row]:
        for event in self.org.events(start, end):
            if event.source == "completions":
                yield self._row(event)

    def _row(self, event: Event) -> Row:
        m = dict(event.metrics)
        dims = dict(zip(("project_id", "user_id", "api_key_id"), event.dims[:3], strict=True))
        key = self.keys[str(dims["api_key_id"])]
        tier = _tier(event)
        group = {
            "api_key_id": key_id(key.id),
            "workspace_id": workspace_id(key.project_id),
            "model": claude_model(str(_dimension(event, "model"))),
            "service_tier": tier,
            "actor": _actor(key),
        }
        cache_write = m.get("input_cache_write_tokens", 0)
        cache_read = m.get("input_cached_tokens", 0)
        return Row(
            event.ts,
            group,
            m["input_tokens"] - cache_read - cache_write,
            cache_read,
            cache_write,
            m["output_tokens"],
            m.get("num_model_requests", 0),
        )

    def truth(
        self, start: int, end: int, group_by: tuple[str, ...] = ()
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """Tokens in the tracker's meaning (``input_tokens`` every input token, cached ones
        the cache reads) in [start, end), per ``group_by`` values."""
        out: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
        for row in self.rows(start, end):
            totals = out[tuple(_plain(row.group[g]) for g in group_by)]
            totals["input_tokens"] += row.uncached + row.cache_read + row.cache_write
            totals["input_cached_tokens"] += row.cache_read
            totals["input_cache_write_tokens"] += row.cache_write
            totals["output_tokens"] += row.output
            totals["num_model_requests"] += row.requests
        return {k: dict(v) for k, v in out.items()}

    def cost_truth(self, start: int, end: int) -> Decimal:
        """Billed USD of the UTC days in [start, end)."""
        return sum((r.cents for r in self.rows(start, end)), Decimal(0)) / 100


def _plain(value: Any) -> Any:
    return value["user_id"] if isinstance(value, dict) and "user_id" in value else value


def _dimension(event: Event, name: str) -> Any:
    from usage_tracker.upstream.contract import DIMENSIONS

    return event.dims[DIMENSIONS.index(name)]


def _tier(event: Event) -> str:
    if _dimension(event, "batch") is True:
        return "batch"
    tier = str(_dimension(event, "service_tier") or "default")
    return {"priority": "priority", "flex": "flex"}.get(tier, "standard")


def _actor(key: SimKey) -> dict[str, Any]:
    """Who the usage is attributed to: the key's user, else the key itself."""
    if key.owner_type != "user":
        return {"type": "api_actor", "api_key_id": key_id(key.id)}
    return {
        "type": "user_actor",
        "user_id": user_id(key.owner_id),
        "email_address": key.owner_email,
        "name": key.owner_name,
        "deleted": False,
    }


class AnthropicSimulator:
    """ASGI app answering like Anthropic's Admin API for one organization."""

    def __init__(self, org: Organization, *, admin_key: str = DEFAULT_ADMIN_KEY) -> None:
        self.company = AnthropicOrganization(org)
        self.org = org
        self.admin_key = admin_key
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, list[str]], str | None, int, Any]] = []
        """(path, query, anthropic-beta header, status, body) of every request answered."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = self._respond(scope)
        query = Query(scope.get("query_string", b"").decode("latin-1"))
        beta = _header(scope, b"anthropic-beta")
        self.log.append((scope["path"], dict(query.values), beta, status, body))
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"request-id", b"req_sim")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _respond(self, scope: Scope) -> tuple[int, Any]:
        path = scope["path"].rstrip("/")
        self.requests[path.rsplit("/", 1)[-1]] += 1
        # The pinned SDK sends the key as a bearer token; Anthropic's reference shows x-api-key.
        bearer = (_header(scope, b"authorization") or "").removeprefix("Bearer ")
        if self.admin_key not in (bearer, _header(scope, b"x-api-key")):
            return 401, _error("authentication_error", "invalid x-api-key")
        query = Query(scope.get("query_string", b"").decode("latin-1"))
        try:
            if scope["method"] != "GET":
                raise ApiError(405, f"{scope['method']} is not supported by the simulator.")
            if path in ("/v1/organizations/analytics/usage", "/v1/organizations/analytics/cost"):
                if BETA not in (_header(scope, b"anthropic-beta") or ""):
                    raise ApiError(400, f"this endpoint needs the anthropic-beta header {BETA}")
                return 200, self._report(query, cost=path.endswith("/cost"))
            if path == "/v1/organizations/api_keys":
                return 200, _list(query, [self._key(k) for k in self.org.keys])
            if path == "/v1/organizations/users":
                return 200, _list(query, [_user(u) for u in self.org.users])
            if path == "/v1/organizations/workspaces":
                projects = self.org.projects.values()
                return 200, _list(query, [_workspace(p) for p in projects])
            raise ApiError(404, f"Not found: {path}")
        except ApiError as e:
            return e.status, _error("invalid_request_error", e.message)

    def _report(self, query: Query, *, cost: bool) -> dict[str, Any]:
        start = _time(query.text("starting_at"), "starting_at", required=True)
        end_text = query.text("ending_at")
        width = query.text("time_bucket_width")
        if width is not None and width not in WIDTHS:
            raise ApiError(400, "time_bucket_width: one of 1d, 1h, 1m")
        if width is not None and end_text is None:
            raise ApiError(400, "ending_at is required with time_bucket_width")
        now = int(self.org.now)
        end = _time(end_text, "ending_at") if end_text else min(now, start + MAX_RANGE)
        if start < EARLIEST or start < now - 365 * 86400:
            raise ApiError(400, "starting_at must be within the last 365 days, from 2026-01-01")
        if end <= start or end - start > MAX_RANGE:
            raise ApiError(400, "the range must be positive and at most 31 days")
        allowed = COST_GROUP_BY if cost else USAGE_GROUP_BY
        group_by = query.array("group_by")
        if len(group_by) > 5 or any(g not in allowed for g in group_by):
            raise ApiError(400, f"group_by[]: at most 5 of {', '.join(allowed)}")
        limit = query.integer("limit") or 20
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit: 1 to 1000")
        step = WIDTHS[width] if width else end - start
        totals: dict[tuple[Any, ...], list[Any]] = {}
        for row in self.company.rows(start, end):
            bucket = start + (row.ts - start) // step * step
            values = tuple(json.dumps(row.group[g], sort_keys=True) for g in group_by)
            into = totals.setdefault((bucket, *values), [0, 0, 0, 0, 0, Decimal(0)])
            for i, n in enumerate(
                (row.uncached, row.cache_read, row.cache_write, row.output, row.requests)
            ):
                into[i] += n
            into[5] += row.cents
        keys = sorted(totals, key=lambda k: (k[0], -sum(totals[k][:4]), k[1:]))
        fingerprint = f"{cost}:{start}:{end}:{width}:{','.join(group_by)}"
        offset = _offset(query.text("page"), fingerprint)
        shown = keys[offset : offset + limit]
        data = [self._item(k, totals[k], group_by, step, end, cost=cost) for k in shown]
        more = offset + limit < len(keys)
        return {
            "data": data,
            "has_more": more,
            "next_page": _cursor(offset + limit, fingerprint) if more else None,
            "data_refreshed_at": _iso(now),
        }

    def _item(
        self,
        key: tuple[Any, ...],
        sums: list[Any],
        group_by: list[str],
        step: int,
        end: int,
        *,
        cost: bool,
    ) -> dict[str, Any]:
        bucket, values = key[0], key[1:]
        group: dict[str, Any] = dict.fromkeys(
            ("actor", "actor_type", "api_key_id", "context_window", "inference_geo", "model"),
            None,
        )
        group.update({"service_tier": None, "workspace_id": None, "speed": None})
        group.update({g: json.loads(v) for g, v in zip(group_by, values, strict=True)})
        uncached, read, write, output, requests, cents = sums
        item: dict[str, Any] = {
            "starting_at": _iso(bucket),
            "ending_at": _iso(min(bucket + step, end)),
            "group": group,
        }
        if cost:
            group.update({"cost_type": None, "token_type": None})
            amount = format(cents, "f")  # fractional cents, exact
            item["cost"] = {
                "amount": amount,
                "currency": "USD",
                "list_amount": amount,
                "requests": requests,
            }
        else:
            item["usage"] = {
                "uncached_input_tokens": uncached,
                "cache_read_input_tokens": read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": write,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": output,
                "requests": requests,
                "server_tool_use": {"web_search_requests": 0},
                "total_tokens": uncached + read + write + output,
            }
        return item

    def _key(self, key: SimKey) -> dict[str, Any]:
        owner = {"type": "user_actor", "user_id": user_id(key.owner_id)}
        return {
            "id": key_id(key.id),
            "type": "api_key",
            "name": key.name,
            "created_at": _iso(key.created_at),
            "created_by": {
                "id": user_id(key.owner_id) if key.owner_type == "user" else "user_admin",
                "type": "user",
            },
            "expires_at": None,
            "partial_key_hint": "sk-ant-api03-" + key.id[-4:] + "...AAAA",
            "principal": owner if key.owner_type == "user" else None,
            "scope": {"type": "workspace", "workspace_id": workspace_id(key.project_id)},
            "status": "archived" if key.deleted_at is not None else "active",
        }


def _user(u: Any) -> dict[str, Any]:
    return {
        "id": user_id(u.id),
        "type": "user",
        "email": u.email,
        "name": u.name,
        "role": {"owner": "admin"}.get(u.role, "user"),
        "added_at": _iso(u.added_at),
    }


def _workspace(p: Any) -> dict[str, Any]:
    return {
        "id": workspace_id(p.id),
        "type": "workspace",
        "name": p.name,
        "created_at": _iso(p.created_at),
        "archived_at": None if p.archived_at is None else _iso(p.archived_at),
        "compartment_id": "cmp_" + p.id[-8:],
        "data_residency": {
            "allowed_inference_geos": "unrestricted",
            "default_inference_geo": "global",
            "workspace_geo": "us",
        },
        "display_color": "#6C5BB9",
        "external_key_id": None,
        "tags": {},
        "user_profile_id": None,
    }


def _list(query: Query, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Anthropic's list paging: ``after_id`` / ``limit`` → ``first_id``, ``last_id``."""
    limit = query.integer("limit") or 20
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit: 1 to 1000")
    after = query.text("after_id")
    start = 0
    if after:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise ApiError(400, f"after_id: unknown id {after}")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return {
        "data": page,
        "has_more": start + limit < len(items),
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None, name: str, *, required: bool = False) -> int:
    if text is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return 0
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text):
        raise ApiError(400, f"{name}: expected an RFC 3339 time with a zone")
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}|{fingerprint}".encode()).decode()


def _offset(page: str | None, fingerprint: str) -> int:
    if not page:
        return 0
    try:
        offset, seen = base64.urlsafe_b64decode(page.encode()).decode().split("|", 1)
    except ValueError:
        raise ApiError(400, "page: not a cursor this API handed out") from None
    if seen != fingerprint:
        raise ApiError(400, "page: the cursor belongs to another query")
    return int(offset)

"""The simulated Anthropic Admin API, field for field the types of the pinned ``anthropic`` SDK.

Served: the usage and cost analytics reports (``/v1/organizations/analytics/usage`` and
``/cost``, beta header required, at most 31 days per request, starting no earlier than
2026-01-01), API keys, users and workspaces. Costs are in cents as decimal strings, as
Anthropic sends them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal
from typing import Any

from usage_tracker.simulator.anthropic.org import (
    AnthropicOrganization,
    key_id,
    user_id,
    workspace_id,
)
from usage_tracker.simulator.company import SimKey
from usage_tracker.simulator.http import ApiError, Query, Receive, Scope, Send, header, lifespan
from usage_tracker.simulator.org import Organization

BETA = "analytics-usage-cost-2026-08-24"
EARLIEST = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
MAX_RANGE = 31 * 86400
WIDTHS = {"1d": 86400, "1h": 3600, "1m": 60}
USAGE_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "actor")
COST_GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier")
DEFAULT_ADMIN_KEY = "sk-ant-admin01-simulator"
WRITE_KEY = "sk-ant-admin01-write-simulator"
"""An admin key that may change keys' status (and read); the default one may only read."""


class AnthropicSimulator:
    """ASGI app answering like Anthropic's Admin API for one organization."""

    def __init__(
        self, org: Organization, *, admin_key: str = DEFAULT_ADMIN_KEY, write_key: str = WRITE_KEY
    ) -> None:
        self.company = AnthropicOrganization(org)
        self.org = org
        self.admin_key = admin_key
        self.write_key = write_key
        self.status: dict[str, str] = {}
        """Keys (the organization's ids) set inactive or active again through the API."""
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, list[str]], str | None, int, Any]] = []
        """(path, query, anthropic-beta header, status, body) of every request answered."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        sent = b""
        if scope["method"] == "POST":
            while True:
                message = await receive()
                sent += message.get("body", b"")
                if not message.get("more_body"):
                    break
        status, body = self._respond(scope, sent)
        query = Query(scope.get("query_string", b"").decode("latin-1"))
        beta = header(scope, b"anthropic-beta")
        self.log.append((scope["path"], dict(query.values), beta, status, body))
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"request-id", b"req_sim")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _respond(self, scope: Scope, sent: bytes = b"") -> tuple[int, Any]:
        path = scope["path"].rstrip("/")
        self.requests[path.rsplit("/", 1)[-1]] += 1
        # The pinned SDK sends the key as a bearer token; Anthropic's reference shows x-api-key.
        bearer = (header(scope, b"authorization") or "").removeprefix("Bearer ")
        given = {bearer, header(scope, b"x-api-key")}
        if self.admin_key not in given and self.write_key not in given:
            return 401, _error("authentication_error", "invalid x-api-key")
        query = Query(scope.get("query_string", b"").decode("latin-1"))
        try:
            keyed = re.fullmatch(r"/v1/organizations/api_keys/([^/]+)", path)
            if keyed and scope["method"] == "POST":
                if self.write_key not in given:
                    return 403, _error(
                        "permission_error", "This admin key may not change API keys."
                    )
                return 200, self._update_key(keyed.group(1), sent)
            if keyed and scope["method"] == "GET":
                return 200, self._key(self._find_key(keyed.group(1)))
            if scope["method"] != "GET":
                raise ApiError(405, f"{scope['method']} is not supported by the simulator.")
            if path in ("/v1/organizations/analytics/usage", "/v1/organizations/analytics/cost"):
                if BETA not in (header(scope, b"anthropic-beta") or ""):
                    raise ApiError(400, f"this endpoint needs the anthropic-beta header {BETA}")
                return 200, self._report(query, cost=path.endswith("/cost"))
            if path == "/v1/organizations/api_keys":
                return 200, list_page(query, [self._key(k) for k in self.org.keys])
            if path == "/v1/organizations/users":
                return 200, list_page(query, [_user(u) for u in self.org.users])
            if path == "/v1/organizations/workspaces":
                projects = self.org.projects.values()
                return 200, list_page(query, [_workspace(p) for p in projects])
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

    def _find_key(self, ident: str) -> SimKey:
        found = next((k for k in self.org.keys if key_id(k.id) == ident), None)
        if found is None:
            raise ApiError(404, f"API key {ident} not found")
        return found

    def _update_key(self, ident: str, sent: bytes) -> dict[str, Any]:
        key = self._find_key(ident)
        try:
            body = json.loads(sent or b"{}")
        except ValueError:
            raise ApiError(400, "the body is not JSON") from None
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("active", "inactive", "archived", None):
            raise ApiError(400, "status: expected active, inactive or archived")
        if status is not None:
            if key.deleted_at is not None or self.status.get(ident) == "archived":
                raise ApiError(400, "an archived key cannot be changed")
            self.status[ident] = status
            if status == "active":
                self.org.stops.unblock(key.id, self.org.now)
            else:
                self.org.stops.block(key.id, self.org.now)
        return self._key(key)

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
            "status": "archived"
            if key.deleted_at is not None
            else self.status.get(key_id(key.id), "active"),
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


def list_page(query: Query, items: list[dict[str, Any]]) -> dict[str, Any]:
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

"""The simulated OpenAI admin API: an ASGI app serving an :class:`Organization` by the contract.

It accepts what the real API accepts (``group_by=a&group_by=b`` and ``group_by[]=a``, every filter,
bucket widths with their default and maximum limits, opaque cursors) and rejects what it rejects,
with OpenAI's error body, and answers as each of :data:`API_VERSIONS` did.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from usage_tracker.providers.openai.contract import (
    COSTS_DEFAULT_LIMIT,
    COSTS_FILTERS,
    COSTS_GROUP_BY,
    COSTS_MAX_LIMIT,
    DEFAULT_LIMIT,
    LATER_DIMENSIONS,
    MAX_LIMIT,
    SOURCES,
)
from usage_tracker.simulator.company import SimKey, SimProject, SimUser
from usage_tracker.simulator.http import ApiError, Query, Receive, Scope, Send, header, lifespan
from usage_tracker.simulator.openai.controls import Controls
from usage_tracker.simulator.openai.faults import Faults
from usage_tracker.simulator.openai.limits import Limits, rate_limits
from usage_tracker.simulator.openai.paging import (
    Window,
    bucket_json,
    cost_result,
    filters_of,
    group_by_of,
    list_page,
    passes,
    usage_results,
)
from usage_tracker.simulator.org import Organization

API_VERSIONS = ("2026-08", "2026-11", "2027-01")
"""How the simulator answers: as OpenAI's API did in 2026-08 (no ``api_source`` dimension, no
Decisions source: 404), as it does now, or as a newer one (results carry a field this version
does not know)."""
CURRENT_API = "2026-11"
WRITE_KEY = "sk-admin-write-simulator"
"""An admin key with write scopes: it may read too. The read-only admin key may not write."""
WRITE_SCOPE_MESSAGE = (
    "You have insufficient permissions for this operation. "
    "Missing scopes: api.organization.projects.api_keys.write."
)
LATER_SOURCES = frozenset({"decisions"})


class Simulator:
    """ASGI app. ``admin_key`` is accepted; ``revoked_keys`` get 401 saying so; ``sk-proj-…`` keys
    get the missing-scope error (403 with a bare-string ``error`` in the ``"2026"`` style, 401 with
    an error object in the ``"2025"`` style); anything else gets 401 ``invalid_api_key``.
    """

    def __init__(
        self,
        org: Organization,
        *,
        admin_key: str = "sk-admin-simulator",
        write_key: str = WRITE_KEY,
        revoked_keys: tuple[str, ...] = ("sk-admin-revoked-simulator",),
        faults: Faults | None = None,
        scope_error_style: str = "2026",
        api_version: str = CURRENT_API,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version: one of {', '.join(API_VERSIONS)}")
        self.api_version = api_version
        self.org = org
        self.admin_key = admin_key
        self.write_key = write_key
        self.controls = Controls(org)
        self.write_faults: list[int] = []
        """Statuses the next writes are answered with (500: failing; 403: a key without the
        scope), one per write, before writes succeed again."""
        self.writes: list[tuple[str, str, Any]] = []
        """(method, path, body) of every write that was applied."""
        self.revoked_keys = revoked_keys
        self.faults = faults or Faults()
        self.scope_error_style = scope_error_style
        self.requests: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        """Requests being answered at once, now and at most (the sync's concurrency, seen)."""
        self.log: list[tuple[float, str, int]] = []
        """(monotonic time it arrived, path, status sent) of every request."""
        self.responses_sent = 0
        """Every response, faulted ones included; numbers the x-request-id header."""
        self._limits: Limits | None = None
        self.limits_refused = False
        """Answer 403 to the limits' endpoints, as for an admin key without their permission."""
        self._routes: list[tuple[re.Pattern[str], Callable[..., dict[str, Any]]]] = [
            (re.compile(r"/v1/organization/usage/(?P<source>[a-z_]+)"), self._usage),
            (re.compile(r"/v1/organization/costs"), self._costs),
            (re.compile(r"/v1/organization/projects"), self._projects),
            (re.compile(r"/v1/organization/projects/(?P<project_id>[^/]+)"), self._project),
            (re.compile(r"/v1/organization/projects/(?P<project_id>[^/]+)/api_keys"), self._keys),
            (
                re.compile(
                    r"/v1/organization/projects/(?P<project_id>[^/]+)/api_keys/(?P<key_id>[^/]+)"
                ),
                self._key,
            ),
            (re.compile(r"/v1/organization/spend_limit"), self._spend_limit),
            (re.compile(r"/v1/organization/spend_alerts"), self._spend_alerts),
            (
                re.compile(r"/v1/organization/projects/(?P<project_id>[^/]+)/spend_limit"),
                self._spend_limit,
            ),
            (
                re.compile(r"/v1/organization/projects/(?P<project_id>[^/]+)/spend_alerts"),
                self._spend_alerts,
            ),
            (
                re.compile(r"/v1/organization/projects/(?P<project_id>[^/]+)/rate_limits"),
                self._rate_limits,
            ),
            (re.compile(r"/v1/organization/audit_logs"), self._audit_logs),
            (re.compile(r"/v1/organization/users"), self._users),
            (re.compile(r"/v1/organization/users/(?P<user_id>[^/]+)"), self._user),
            (re.compile(r"/_simulator/truth"), self._truth),
        ]

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        arrived = time.monotonic()
        self.in_flight += 1  # one event loop: no lock needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.faults.latency_seconds:
                await asyncio.sleep(self.faults.latency_seconds)
            sent = await _body(receive) if scope["method"] in ("POST", "DELETE") else b""
            status, body, headers = self._respond(scope, sent)
            fault = self.faults.draw() if status == 200 else None
            self.log.append((arrived, scope["path"], 429 if fault == "429" else status))
            await self._send(send, fault, status, body, headers)
        finally:
            self.in_flight -= 1

    def _respond(self, scope: Scope, sent: bytes = b"") -> tuple[int, Any, dict[str, str]]:
        path = scope["path"].rstrip("/")
        method = scope["method"]
        self.requests[_route_label(path)] += 1
        try:
            key = self._authenticate(header(scope, b"authorization"))
            if method in ("POST", "DELETE"):
                return 200, self._write(key, method, path, sent), {}
            if method != "GET":
                raise ApiError(405, f"Method {method} is not supported by the simulator.")
            query = Query(scope.get("query_string", b"").decode("latin-1"))
            for pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match:
                    return 200, handler(query, **match.groupdict()), {}
            raise ApiError(404, f"Invalid URL (GET {path})")
        except _AuthFailure as failure:
            return failure.status, failure.body, {}
        except ApiError as error:
            return error.status, error.body(), {}

    def _write(self, key: str, method: str, path: str, sent: bytes) -> dict[str, Any]:
        """A key's scopes or a project's hard spend limit changed (with the write key only)."""
        if key != self.write_key:
            if self.scope_error_style == "2026":
                raise _AuthFailure(403, {"error": WRITE_SCOPE_MESSAGE})
            raise _AuthFailure(401, _error_body(WRITE_SCOPE_MESSAGE, None))
        if self.write_faults:
            status = self.write_faults.pop(0)
            if status == 403:
                raise _AuthFailure(403, {"error": WRITE_SCOPE_MESSAGE})
            raise ApiError(status, "The server had an error processing your request.")
        try:
            body = json.loads(sent or b"{}")
        except ValueError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "We could not parse the JSON body of your request.")
        keyed = re.fullmatch(r"/v1/organization/projects/([^/]+)/api_keys/([^/]+)", path)
        limited = re.fullmatch(r"/v1/organization/projects/([^/]+)/spend_limit", path)
        if keyed and method == "POST":
            project_id, key_id = keyed.groups()
            found = next((k for k in self._visible_keys(project_id, "any") if k.id == key_id), None)
            if found is None:
                raise ApiError(404, f"No such API key: '{key_id}'.")
            self.controls.update_key(found, body)
            answer = self._key_json(found)
        elif limited:
            project_id = limited.group(1)
            self._project(Query(""), project_id)
            self.controls.write_limit(project_id, body if method == "POST" else None)
            if method == "DELETE":
                answer = {"object": "project.spend_limit.deleted", "deleted": True}
            else:
                answer = self.limits.spend_limit(self.org, project_id)
        else:
            raise ApiError(404, f"Invalid URL ({method} {path})")
        self.writes.append((method, path, body))
        return answer

    def _audit_logs(self, query: Query) -> dict[str, Any]:
        return self.controls.audit_logs(query)

    async def _send(
        self, send: Send, fault: str | None, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        if fault == "429":
            wait = self.faults.retry_after_ms
            status, headers = (
                429,
                {"retry-after-ms": str(wait), "retry-after": str(-(-wait // 1000))},
            )
            body = ApiError(
                429,
                "Rate limit reached for organization usage requests.",
                code="rate_limit_exceeded",
            ).body()
        elif fault == "500":
            status, body = (
                500,
                ApiError(500, "The server had an error processing your request.").body(),
            )
        elif fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        payload = json.dumps(body).encode()
        self.responses_sent += 1
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"x-request-id", f"req_{self.responses_sent:024x}".encode()),
            (b"content-length", str(len(payload)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        if fault == "drop":
            # Headers promise the whole body; half of it arrives and the connection closes.
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            return
        if fault == "truncate":
            # A complete HTTP response whose JSON body is cut short.
            cut = payload[: len(payload) // 2]
            cut += b" " * (len(payload) - len(cut))
            await send({"type": "http.response.body", "body": cut})
            return
        await send({"type": "http.response.body", "body": payload})

    def _authenticate(self, authorization: str | None) -> str:
        key = (authorization or "").removeprefix("Bearer ").strip()
        if key in (self.admin_key, self.write_key):
            return key
        if not key:
            raise _AuthFailure(401, _error_body("You didn't provide an API key.", None))
        if key in self.revoked_keys:
            raise _AuthFailure(
                401,
                _error_body(
                    "The API key provided has been revoked. Create a new key on the API keys page.",
                    "invalid_api_key",
                ),
            )
        if key.startswith("sk-proj-"):
            message = (
                "You have insufficient permissions for this operation. "
                "Missing scopes: api.usage.read."
            )
            if self.scope_error_style == "2026":
                raise _AuthFailure(403, {"error": message})
            raise _AuthFailure(401, _error_body(message, None))
        raise _AuthFailure(
            401,
            _error_body(
                f"Incorrect API key provided: {_redact(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
            ),
        )

    # -- usage and costs --------------------------------------------------------------------

    def _usage(self, query: Query, source: str) -> dict[str, Any]:
        spec = SOURCES.get(source)
        older = self.api_version == "2026-08"
        if spec is None or (older and source in LATER_SOURCES):
            raise ApiError(404, f"Invalid URL (GET /v1/organization/usage/{source})")
        if older:  # the API before api_source: neither accepted nor answered
            spec = dataclasses.replace(
                spec, group_by=tuple(d for d in spec.group_by if d not in LATER_DIMENSIONS)
            )
        window = Window.parse(query, DEFAULT_LIMIT, MAX_LIMIT, ("1m", "1h", "1d"), self.org.now)
        group_by = group_by_of(query, spec.group_by)
        filters = filters_of(query, spec)
        buckets = []
        for start, end in window.buckets():
            events = [
                e for e in self.org.events(start, end) if e.source == source and passes(e, filters)
            ]
            results = usage_results(spec, events, group_by)
            if self.api_version == "2027-01":
                for result in results:  # a field no version of ours knows
                    result["output_reasoning_tokens"] = result.get("output_tokens", 0) // 3
            buckets.append(bucket_json(start, end, results))
        return window.page(buckets)

    def _costs(self, query: Query) -> dict[str, Any]:
        window = Window.parse(
            query, {"1d": COSTS_DEFAULT_LIMIT}, {"1d": COSTS_MAX_LIMIT}, ("1d",), self.org.now
        )
        group_by = group_by_of(query, COSTS_GROUP_BY)
        filters = {dim: set(query.array(p)) for p, dim in COSTS_FILTERS.items() if query.array(p)}
        buckets = []
        for start, end in window.buckets():
            rows: dict[tuple[object, ...], list[Any]] = {}
            for event, line in self.org.cost_lines(start, end):
                values = {
                    "project_id": event.dims[0],
                    "api_key_id": event.dims[2],
                    "line_item": line.line_item,
                }
                if any(values[d] not in allowed for d, allowed in filters.items()):
                    continue
                key = tuple(values[g] if g in group_by else None for g in COSTS_GROUP_BY)
                row = rows.setdefault(key, [0, 0, line.unit])
                row[0] += line.micros
                row[1] += line.quantity
            buckets.append(
                bucket_json(start, end, [cost_result(k, v, group_by) for k, v in rows.items()])
            )
        return window.page(buckets)

    def _truth(self, query: Query) -> dict[str, Any]:
        """Not OpenAI's: the simulator's ground truth, for scripts that test a client.

        ``source`` (a usage source or ``costs``), ``start_time``, ``end_time``, ``group_by``."""
        source = query.text("source") or "completions"
        start = query.integer("start_time", required=True) or 0
        end = query.integer("end_time", required=True) or 0
        if source == "costs":
            groups = group_by_of(query, COSTS_GROUP_BY)
            costs = self.org.cost_truth(start, end, groups)
            rows = [
                {**dict(zip(groups, k, strict=True)), "amount": str(v)} for k, v in costs.items()
            ]
        elif source in SOURCES:
            groups = group_by_of(query, SOURCES[source].group_by)
            usage = self.org.truth(source, start, end, groups)
            rows = [{**dict(zip(groups, k, strict=True)), **v} for k, v in usage.items()]
        else:
            raise ApiError(400, f"Invalid value for 'source': {source!r}.", "source")
        return {"object": "list", "data": rows}

    # -- names ------------------------------------------------------------------------------

    def _projects(self, query: Query) -> dict[str, Any]:
        archived = query.boolean("include_archived") or False
        projects = [p for p in self.org.projects.values() if archived or p.archived_at is None]
        return list_page(query, [_project(p) for p in projects])

    def _project(self, query: Query, project_id: str) -> dict[str, Any]:
        if project_id not in self.org.projects:
            raise ApiError(404, f"No such project: '{project_id}'.")
        return _project(self.org.projects[project_id])

    # -- limits ------------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The spend limits and alerts the organization has set, made when first asked for
        (from its last 30 days' spend then); a test may change them."""
        if self._limits is None:
            self._limits = Limits.of(self.org)
        return self._limits

    def _refuse_limits(self) -> None:
        if self.limits_refused:
            raise ApiError(403, "You have insufficient permissions for this operation.")

    def _spend_limit(self, query: Query, project_id: str | None = None) -> dict[str, Any]:
        del query
        self._refuse_limits()
        if project_id is not None:
            self._project(Query(""), project_id)  # 404 for a project that does not exist
        return self.limits.spend_limit(self.org, project_id)

    def _spend_alerts(self, query: Query, project_id: str | None = None) -> dict[str, Any]:
        self._refuse_limits()
        if project_id is not None:
            self._project(query, project_id)
        owners = [u.email for u in self.org.users if u.role == "owner"]
        return list_page(query, self.limits.spend_alerts(project_id, owners))

    def _rate_limits(self, query: Query, project_id: str) -> dict[str, Any]:
        self._refuse_limits()
        self._project(query, project_id)
        return list_page(query, rate_limits(project_id))

    def _visible_keys(self, project_id: str, access: str) -> list[SimKey]:
        if project_id not in self.org.projects:
            raise ApiError(404, f"No such project: '{project_id}'.")
        if access not in ("active", "inactive", "any"):
            raise ApiError(400, "Invalid value for 'owner_project_access'.", "owner_project_access")
        now = self.org.now
        return [
            k
            for k in self.org.keys
            if k.project_id == project_id
            and k.created_at <= now
            and (k.deleted_at is None or now < k.deleted_at)
            and (access == "any" or k.owner_has_access == (access == "active"))
        ]

    def _keys(self, query: Query, project_id: str) -> dict[str, Any]:
        keys = self._visible_keys(project_id, query.text("owner_project_access") or "active")
        return list_page(query, [self._key_json(k) for k in keys])

    def _key(self, query: Query, project_id: str, key_id: str) -> dict[str, Any]:
        for key in self._visible_keys(project_id, "any"):
            if key.id == key_id:
                return self._key_json(key)
        raise ApiError(404, f"No such API key: '{key_id}'.")

    def _key_json(self, key: SimKey) -> dict[str, Any]:
        owner: dict[str, Any] = {
            "id": key.owner_id,
            "name": key.owner_name,
            "created_at": key.created_at,
        }
        if key.owner_type == "user":
            owner |= {"email": key.owner_email, "role": "member"}
        else:
            owner |= {"role": "member"}
        last_used = max(
            (
                e.ts
                for e in self.org.events(self.org.now - 86400, self.org.now)
                if e.dims[2] == key.id
            ),
            default=None,
        )
        return {
            "object": "organization.project.api_key",
            "redacted_value": f"sk-...{key.id[-4:]}",
            "name": key.name,
            "created_at": key.created_at,
            "last_used_at": last_used,
            "id": key.id,
            "owner_project_access": "active" if key.owner_has_access else "inactive",
            "owner": {"type": key.owner_type, key.owner_type: owner},
        }

    def _users(self, query: Query) -> dict[str, Any]:
        emails = set(query.array("emails"))
        users = [u for u in self.org.users if not emails or u.email in emails]
        return list_page(query, [_user(u) for u in users])

    def _user(self, query: Query, user_id: str) -> dict[str, Any]:
        for user in self.org.users:
            if user.id == user_id:
                return _user(user)
        raise ApiError(404, f"No such user: '{user_id}'.")


class _AuthFailure(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


def _project(p: SimProject) -> dict[str, Any]:
    return {
        "id": p.id,
        "object": "organization.project",
        "name": p.name,
        "created_at": p.created_at,
        "archived_at": p.archived_at,
        "status": "archived" if p.archived_at is not None else "active",
    }


def _user(u: SimUser) -> dict[str, Any]:
    return {
        "object": "organization.user",
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "role": u.role,
        "added_at": u.added_at,
    }


def _error_body(message: str, code: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def _redact(key: str) -> str:
    # What OpenAI itself echoes: the head and last four characters of a long key, a short one whole.
    return key if len(key) < 12 else f"{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}"


def _route_label(path: str) -> str:
    parts = path.removeprefix("/v1/organization/").split("/")
    if parts[0] == "usage" and len(parts) > 1:
        return parts[1]
    if parts[0] == "projects" and len(parts) > 2:
        return parts[2]  # api_keys, spend_limit, spend_alerts, rate_limits
    return parts[0]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)

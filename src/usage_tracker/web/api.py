"""The JSON API. Routes are thin: parse, call a report, return its rows."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from usage_tracker import __version__, exports, reports, runtime
from usage_tracker.cursors import CursorError
from usage_tracker.names import Names
from usage_tracker.reports import ReportError
from usage_tracker.scope import Scope
from usage_tracker.store import StoreUnavailableError, writes
from usage_tracker.store.schema import STORED_AS, from_stored
from usage_tracker.sync import describe_note
from usage_tracker.upstream.contract import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SOURCES,
    WIDTH_SECONDS,
    align_down,
    align_up,
    buckets_stop,
)
from usage_tracker.web.auth import Access, SignInRequired, Viewer, principal
from usage_tracker.web.results import Version, as_json
from usage_tracker.web.state import AppState, current_state

HOUR, DAY = 3600, 86400


class ErrorDetail(BaseModel):
    message: str
    param: str | None


class ErrorBody(BaseModel):
    """Every 4xx (and the 502 of an upstream outage on the 1m path) has this body."""

    error: ErrorDetail


@functools.lru_cache(maxsize=128)
def _single_valued(app: Any, path: str) -> tuple[str, ...]:
    """The query parameters of ``path`` that OpenAPI says take one value (not an array)."""
    operation = app.openapi().get("paths", {}).get(path, {}).get("get", {})
    return tuple(
        p["name"]
        for p in operation.get("parameters", ())
        if p.get("in") == "query" and '"array"' not in json.dumps(p.get("schema", {}))
    )


def once_each(request: Request) -> None:
    """A parameter given twice where the API takes one value is refused: FastAPI would quietly
    take the last one, and a script would get figures for a range it did not mean."""
    route = request.scope.get("route")
    path = getattr(route, "path_format", request.url.path)
    for name in _single_valued(request.app, path):
        if len(request.query_params.getlist(name)) > 1:
            raise ReportError(f"Invalid value for '{name}': given more than once.", name)


router = APIRouter(
    prefix="/api",
    tags=["api"],
    responses={
        400: {"model": ErrorBody, "description": "A parameter is invalid; `param` names it."}
    },
    dependencies=[Depends(once_each)],
)


State = Annotated[AppState, Depends(current_state)]


class Bucket(BaseModel):
    object: Literal["bucket"] = "bucket"
    start_time: int
    end_time: int
    results: list[dict[str, Any]]


class UsagePage(BaseModel):
    object: Literal["page"] = "page"
    data: list[Bucket]
    has_more: bool
    next_page: str | None


def _group_by(request: Request, values: list[str], source: str) -> list[str]:
    raw = [*values, *request.query_params.getlist("group_by[]")]
    flat = [v.strip() for item in raw for v in item.split(",") if v.strip()]
    if flat in (["none"], []):
        return []
    allowed = SOURCES[source].group_by
    for value in flat:
        if value not in allowed:
            raise ReportError(
                f"Invalid value for 'group_by': '{value}'; {source} can be grouped by "
                f"{', '.join(allowed)} (or none).",
                "group_by",
            )
    return list(dict.fromkeys(flat))


def _result_name(names: Names, result: dict[str, Any]) -> str | None:
    if result.get("api_key_id"):
        return names.person(result["api_key_id"])
    if result.get("user_id"):
        return names.user(result["user_id"])
    if result.get("project_id"):
        return names.project(result["project_id"])
    return None


MAX_TIME = 253402300799
"""9999-12-31T23:59:59Z: the last second a date can name (and far inside a 64-bit integer)."""
TIME_DOC = (
    "Unix seconds, UTC, from 0 to 253402300799. Any second is accepted: hourly storage widens "
    "the range to the whole hours that contain it, and the buckets show the bounds served."
)
Time = Annotated[int, Query(ge=0, le=MAX_TIME, description=TIME_DOC)]
EndTime = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_TIME,
        description=f"{TIME_DOC} Exclusive; must be after start_time. Default: now.",
    ),
]


@router.get(
    "/usage",
    response_model=UsagePage,
    summary="Usage buckets (the upstream page shape)",
    responses={
        404: {"model": ErrorBody, "description": "No OpenAI connection of that name."},
        502: {"model": ErrorBody, "description": "bucket_width=1m: OpenAI did not answer."},
        503: {"model": ErrorBody, "description": "Busy (1m) or the database is unavailable."},
    },
)
def usage(
    request: Request,
    state: State,
    access: Viewer,
    start_time: Time,
    end_time: EndTime = None,
    bucket_width: Literal["1m", "1h", "1d"] = "1d",
    group_by: Annotated[
        list[str],
        Query(description="Repeatable; `none` for no grouping. Each must apply to `source`."),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    source: Annotated[
        str, Query(description="The usage endpoint.", json_schema_extra={"enum": list(SOURCES)})
    ] = "completions",
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_LIMIT["1m"],
            description="Buckets per page: at most 31 (1d), 168 (1h) or 1440 (1m).",
        ),
    ] = None,
    page: Annotated[str | None, Query(description="`next_page` of the previous page.")] = None,
    connection: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=40,
            description="The OpenAI connection to read. Default: the first one configured.",
        ),
    ] = None,
) -> Any:
    """The original tracker's contract, for one OpenAI organization: `1h` and `1d` buckets
    come from the database (the answer is streamed), `1m` goes upstream (the first OpenAI
    connection's) through a bounded single-flight cache. Each result adds `name`."""
    if source not in SOURCES:
        raise ReportError(
            f"Invalid value for 'source': expected one of {', '.join(SOURCES)}.", "source"
        )
    groups = _group_by(request, group_by, source)
    limit = DEFAULT_LIMIT[bucket_width] if limit is None else limit
    if limit > MAX_LIMIT[bucket_width]:
        raise ReportError(
            f"Invalid value for 'limit': at most {MAX_LIMIT[bucket_width]} for "
            f"bucket_width={bucket_width}.",
            "limit",
        )
    if end_time is not None and end_time <= start_time:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    names = access.names
    primary = runtime.pools_of(state.connections)
    if connection is not None and names.connections.get(connection) != "openai":
        known = sorted(n for n, p in names.connections.items() if p == "openai")
        raise ReportError(
            f"Invalid value for 'connection': no OpenAI connection named {connection!r} has "
            f"stored data (known: {', '.join(known) or 'none yet'}).",
            "connection",
            status=404,
        )
    connection = connection or (primary.name if primary else None)
    if bucket_width == "1m":
        if primary is not None and connection != primary.name:
            raise ReportError(
                "Invalid value for 'connection': bucket_width=1m reads the first OpenAI "
                f"connection ({primary.name}) only; use 1h or 1d for {connection}.",
                "connection",
            )
        if not access.scope.everything:
            raise HTTPException(
                403, "bucket_width=1m reads OpenAI directly for everyone's keys; use 1h or 1d."
            )
        return state.minute.page(
            source,
            start_time,
            end_time,
            groups=groups,
            limit=limit,
            page=page,
            shape=lambda r: _minute_result(names, source, r),
        )
    return _stored_page(
        state,
        access,
        source,
        align_down(start_time, "1h"),
        None if end_time is None else align_up(end_time, "1h"),
        width=bucket_width,
        groups=groups,
        limit=limit,
        page=page,
        connection=connection,
    )


CHUNK_SECONDS = 2 * DAY
"""A streamed page is read and encoded this many seconds of buckets at a time."""


def _stored_page(
    state: AppState,
    access: Access,
    source: str,
    start: int,
    end: int | None,
    *,
    width: str,
    groups: list[str],
    limit: int,
    page: str | None,
    connection: str | None,
) -> Response:
    """A page of stored buckets, streamed: read, built and encoded a couple of days at a time,
    so that a year of hourly buckets never sits in memory whole. The first part is read before
    the answer starts, so a database that is down is still a 503."""
    step = WIDTH_SECONDS[width]
    stop = buckets_stop(start, end, step, int(state.clock()))
    fingerprint = f"{source}:{start}:{end}:{width}:{','.join(groups)}"
    if connection is not None:
        fingerprint += f":{connection}"
    first = _cursor_start(state, page, fingerprint, start, step) if page else start
    starts = list(range(first, min(stop, first + limit * step), step))
    if not starts:
        return Response(as_json(EMPTY_PAGE), media_type="application/json")
    after = starts[-1] + step
    more = after < stop
    tail = {
        "has_more": more,
        "next_page": state.cursors.encode(str(after), fingerprint) if more else None,
    }
    per_chunk = max(1, CHUNK_SECONDS // step)
    chunks = [starts[i : i + per_chunk] for i in range(0, len(starts), per_chunk)]

    def encoded(chunk: list[int]) -> bytes:
        buckets = _buckets(
            state,
            access,
            source,
            chunk,
            stop,
            step=step,
            width=width,
            groups=groups,
            connection=connection,
        )
        return b",".join(json.dumps(b, separators=(",", ":")).encode() for b in buckets)

    head = encoded(chunks[0])

    def body() -> Iterator[bytes]:
        yield b'{"object":"page","data":[' + head
        for chunk in chunks[1:]:
            yield b"," + encoded(chunk)
        yield b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]

    return StreamingResponse(body(), media_type="application/json")


EMPTY_PAGE: dict[str, Any] = {"object": "page", "data": [], "has_more": False, "next_page": None}


def _buckets(
    state: AppState,
    access: Access,
    source: str,
    starts: list[int],
    stop: int,
    *,
    step: int,
    width: str,
    groups: list[str],
    connection: str | None,
) -> list[dict[str, Any]]:
    """The buckets starting at ``starts`` (consecutive), each with its results (of
    ``connection``'s rows only, when given)."""
    spec = SOURCES[source]
    first = starts[0]
    last = min(starts[-1] + step, stop)
    time_key = "day" if width == "1d" and first % DAY == 0 else "hour"
    columns = [STORED_AS[g] for g in groups]
    rows = state.store.usage_totals(
        first,
        last,
        [time_key, *columns],
        sources=[source],
        metrics=spec.metrics,
        where=access.scope.narrow(None if connection is None else {"connection": [connection]}),
    )
    names = access.names
    results: dict[int, list[dict[str, Any]]] = {t: [] for t in starts}
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        bucket = first + (row[time_key] - first) // step * step
        key = (bucket, *(row[c] for c in columns))
        out = merged.get(key)
        if out is None:
            out = {"object": spec.object, **dict.fromkeys(spec.metrics, 0)}
            out.update(dict.fromkeys(spec.group_by))
            out.update({g: from_stored(c, row[c]) for g, c in zip(groups, columns, strict=True)})
            out["name"] = _result_name(names, out)
            merged[key] = out
            results[bucket].append(out)
        for metric in spec.metrics:
            out[metric] += row[metric]
    return [
        {
            "object": "bucket",
            "start_time": t,
            "end_time": min(t + step, stop),
            "results": results[t],
        }
        for t in starts
    ]


def _cursor_start(state: AppState, page: str, fingerprint: str, start: int, step: int) -> int:
    """Where a page cursor resumes: signed by this server for this query, and on a bucket
    boundary of it (never before ``start``)."""
    try:
        first = int(state.cursors.decode(page, fingerprint))
    except (CursorError, ValueError) as e:
        raise ReportError(f"Invalid value for 'page': {e}.", "page") from None
    if first < start or (first - start) % step:
        raise ReportError("Invalid value for 'page': not a bucket of this query.", "page")
    return first


def _minute_result(names: Names, source: str, r: Any) -> dict[str, Any]:
    spec = SOURCES[source]
    out: dict[str, Any] = {"object": spec.object, **{m: r.metrics.get(m, 0) for m in spec.metrics}}
    out.update({d: r.dimension(d) for d in spec.group_by})
    out["name"] = _result_name(names, out)
    return out


@router.get(
    "/summary",
    summary="Totals per person, key, user, project, model, source, connection and provider",
    response_model=dict[str, Any],
    responses={404: {"model": ErrorBody, "description": "No connection of that name."}},
)
async def summary(
    state: State,
    access: Viewer,
    start_time: Annotated[
        int | None,
        Query(
            ge=0, le=MAX_TIME, description=f"{TIME_DOC} Default: midnight UTC of end_time's day."
        ),
    ] = None,
    end_time: EndTime = None,
    connection: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=40,
            description="Only this connection's usage and cost (its name).",
        ),
    ] = None,
    provider: Annotated[
        Literal["openai", "anthropic"] | None,
        Query(description="Only the usage and cost of this provider's connections."),
    ] = None,
) -> Response:
    """Over [start_time, end_time), widened to whole UTC hours; by default today (UTC) so far.
    The answer's `start_time` and `end_time` are the bounds served. `by.connection` and
    `by.provider` split it per connection and provider; every `by.api_key` row names its own."""
    start, end = hour_range(int(state.clock()), start_time, end_time)
    where = connections_where(access.names, connection, provider)
    key = _summary_key(state, access.version, access.scope, start, end, where)
    body = state.results.peek(key)
    if body is None:  # computed in a worker thread; an answer already made is sent from here
        body = await run_in_threadpool(
            summary_body, state, access.version, access.names, access.scope, start, end, where
        )
    return Response(body, media_type="application/json")


def connections_where(
    names: Names, connection: str | None, provider: str | None
) -> dict[str, list[str]] | None:
    """The usage filter of ``?connection=`` and ``?provider=`` (None: every connection)."""
    if connection is None and provider is None:
        return None
    known = names.connections
    if connection is not None and connection not in known:
        listed = ", ".join(sorted(known)) or "none yet"
        raise ReportError(
            f"Invalid value for 'connection': no connection named {connection!r} has stored "
            f"data (known: {listed}).",
            "connection",
            status=404,
        )
    picked = [
        name
        for name, of in sorted(known.items())
        if (connection is None or name == connection) and (provider is None or of == provider)
    ]
    return {"connection": picked or ["-"]}


@router.get(
    "/reconciliation",
    summary="Billed against estimated cost per UTC day and model, and where they disagree",
)
def reconciliation(
    state: State,
    access: Viewer,
    start_time: Annotated[
        int | None,
        Query(ge=0, le=MAX_TIME, description=f"{TIME_DOC} Default: 30 days before end_time."),
    ] = None,
    end_time: EndTime = None,
) -> dict[str, Any]:
    """Whole UTC days. `findings` lists the models whose estimate is off by more than
    `threshold_percent` of the bill, or that have no list price."""
    return reconciliation_report(state, access, start_time, end_time)


def reconciliation_report(
    state: AppState, access: Access, start: int | None, end: int | None
) -> dict[str, Any]:
    if start is not None and end is not None and end <= start:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    end = align_up(end if end is not None else int(state.clock()) + 1, "1d")
    start = align_down(start, "1d") if start is not None else end - 30 * DAY
    return reports.reconciliation(state.store, start, end, scope=access.scope)


@router.get("/forecast", summary="Month to date and projected month-end billed cost")
def forecast(state: State, access: Viewer) -> dict[str, Any]:
    """For the organization, each project and each person (a member: their own), with the
    method used in `method`."""
    return reports.forecast(state.store, access.names, int(state.clock()), scope=access.scope)


EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/export",
    summary="A dashboard table or the reconciliation as CSV, JSON or Excel",
    response_class=Response,
    responses={200: {"content": {t: {} for t in EXPORT_TYPES.values()}}},
)
def export(
    state: State,
    access: Viewer,
    by: Literal[
        "person", "key", "user", "project", "model", "connection", "provider", "reconciliation"
    ] = "person",
    format: Literal["csv", "json", "xlsx"] = "csv",
    start_time: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description=f"{TIME_DOC} Default: today's start.")
    ] = None,
    end_time: EndTime = None,
) -> Response:
    """The rows of `/api/summary` for one grouping (tokens, requests, billed and estimated
    cost), or of `/api/reconciliation`, over the same range and with the same scope."""
    if by == "reconciliation":
        report = reconciliation_report(state, access, start_time, end_time)
        start, end = report["start_time"], report["end_time"]
        header, rows = exports.reconciliation_table(report["days"])
    else:
        start, end = hour_range(int(state.clock()), start_time, end_time)
        summary = reports.summary(state.store, access.names, start, end, scope=access.scope)
        header, rows = exports.usage_table(by, summary["by"][exports.BY[by]])
    name = f"usage-{by}-{_date(start)}-{_date(end - 1)}.{format}"
    return Response(
        exports.render(format, header, exports.with_total(header, rows, start, end), by),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _date(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def summary_body(
    state: AppState,
    version: Version,
    names: Names,
    scope: Scope,
    start: int,
    end: int,
    where: dict[str, list[str]] | None = None,
) -> bytes:
    """``/api/summary``'s answer, encoded once per version of the data."""
    provisional = provisional_from(state)
    return state.results.get(
        _summary_key(state, version, scope, start, end, where),
        lambda: as_json(
            reports.summary(
                state.store,
                names,
                start,
                end,
                where=where,
                scope=scope,
                provisional_from=provisional,
            )
        ),
    )


def _summary_key(
    state: AppState,
    version: Version,
    scope: Scope,
    start: int,
    end: int,
    where: dict[str, list[str]] | None = None,
) -> tuple[Any, ...]:
    narrowed = tuple(sorted((k, tuple(v)) for k, v in (where or {}).items()))
    return ("summary.json", version, scope, start, end, narrowed, provisional_from(state))


def provisional_from(state: AppState) -> int:
    """The first UTC day whose billed cost may still change (COSTS_LOOKBACK_DAYS)."""
    now = int(state.clock())
    return align_down(now, "1d") - (state.settings.costs_lookback_days - 1) * DAY


def hour_range(now: int, start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) widened to whole hours. Without ``start``: the UTC day of ``end`` (today
    by default) from its midnight; without ``end``: now."""
    if start is not None and end is not None and end <= start:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    if end is None:  # now; or, for a start in the future, its hour (nothing there yet)
        end = max(now, start or 0) + 1
    start = align_down(end - 1, "1d") if start is None else align_down(start, "1h")
    end = align_up(end, "1h")
    if end <= start:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    return start, end


def tiers_report(
    state: AppState, access: Access, now: int, connection: str | None = None
) -> dict[str, Any]:
    """Today's pools of one OpenAI organization: ``connection``'s (the first OpenAI
    connection's when None), with its own usage tier and sharing projects."""
    settings = state.settings
    openai = [c for c in state.connections if c.provider == "openai"]
    watched = runtime.pools_of(state.connections)
    if connection is not None:
        watched = next((c for c in openai if c.name == connection), None)
        if watched is None:
            raise ReportError(
                f"Invalid value for 'connection': no OpenAI connection named {connection!r} "
                f"(OpenAI's pools are per organization; known: "
                f"{', '.join(c.name for c in openai) or 'none'}).",
                "connection",
                status=404,
            )
    connection = watched.name if watched else None
    hour = now - now % 3600
    rows = state.results.get(
        ("pool rows", access.version, hour, connection),
        lambda: reports.pool_rows(state.store, now, connection),
    )
    report = reports.pool_usage(
        state.store,
        access.names,
        state.pools,
        now,
        usage_tier=watched.usage_tier if watched else settings.usage_tier,
        sharing_projects=watched.sharing_projects if watched else settings.sharing_projects,
        scope=access.scope,
        rows=rows,
    )
    return {
        "connection": connection,
        "organizations": [c.name for c in openai],
        "day_start": report.day_start,
        "now": report.now,
        "resets_at": report.day_start + DAY,
        "usage_tier": report.usage_tier,
        "table_as_of": report.table_as_of,
        "pools": {
            name: {
                "used": s.used,
                "limit": s.limit,
                "remaining": s.remaining,
                "percent": round(s.percent, 2),
                "burn_per_hour": round(s.burn_per_hour),
                "exhausted_at": s.exhausted_at,
                "reported_complimentary": s.reported_complimentary,
                "models": _ranked(s.models),
                "top_consumers": _ranked(s.people)[:5],
            }
            for name, s in report.pools.items()
        },
        "not_eligible": _ranked(report.not_eligible),
        "unclassified": _ranked(report.unclassified),
        "reported_free": _ranked(report.reported_free),
        "disagreements": report.disagreements,
        "free_group_unknown": _ranked(report.free_group_unknown),
        "pool_table_error": state.pool_error,
    }


def _ranked(tokens: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": k, "tokens": v} for k, v in sorted(tokens.items(), key=lambda kv: -kv[1])]


@router.get(
    "/tiers",
    summary="Today's complimentary-token pools (UTC day) of an OpenAI organization",
    responses={404: {"model": ErrorBody, "description": "No OpenAI connection of that name."}},
)
def tiers(
    state: State,
    access: Viewer,
    connection: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=40,
            description="The OpenAI connection (organization). Default: the first one.",
        ),
    ] = None,
) -> dict[str, Any]:
    """`organizations` names every OpenAI connection; each has pools of its own."""
    return tiers_report(state, access, int(state.clock()), connection)


def _is_trouble(note: dict[str, Any]) -> bool:
    return (note["source"], note["kind"]) == writes.TROUBLE


def health_report(state: AppState) -> dict[str, Any]:
    """The app's state in words. It needs no sign-in, so it names no file path or secret."""
    now = int(state.clock())
    try:
        state.store.ping()
        sync_states = state.store.sync_states()
        notes = state.store.upstream_notes()
        database: dict[str, Any] = {"ok": True, "backend": state.store.backend, "error": None}
    except StoreUnavailableError as e:
        sync_states, notes = [], []
        database = {"ok": False, "backend": state.store.backend, "error": str(e)}
    syncs = []
    errors: dict[str, list[str]] = {name: [] for name in state.clients}
    for s in sync_states:
        last = s["last_success_at"]
        syncs.append(
            {
                "connection": s["connection"],
                "source": s["source"],
                "last_success_at": last,
                "age_seconds": None if last is None else now - last,
                "backfill_complete": bool(s["backfill_complete"]),
                "last_error": s["last_error"],
                "notes": [
                    describe_note(n)
                    for n in notes
                    if (n["connection"], n["source"]) == (s["connection"], s["source"])
                ],
            }
        )
        if s["last_error"]:
            errors.setdefault(s["connection"], []).append(s["last_error"])
    # What is failing right now (a 429 being waited out, a refused connection) before the
    # sources' own errors, which are written when the sync gives up on them: this process's
    # client, else what the syncing process recorded lately (a worker that does not sync).
    connections = []
    for name, failures in errors.items():
        client = state.clients.get(name)
        shared = next(
            (
                n["detail"]
                for n in notes
                if n["connection"] == name and _is_trouble(n) and time.time() - n["noted_at"] < 900
            ),
            None,
        )
        error = (client.trouble if client is not None else None) or shared
        error = error or (failures[0] if failures else None)
        connections.append(
            {
                "name": name,
                "provider": client.provider if client is not None else None,
                "configured": client is not None,
                "error": error,
            }
        )
    failing = [c for c in connections if c["error"] and c["configured"]]
    upstream_error = None
    if failing:
        first = failing[0]
        upstream_error = (
            first["error"] if len(connections) == 1 else (f"{first['name']}: {first['error']}")
        )
    notes = [n for n in notes if not _is_trouble(n)]
    if not state.clients:
        upstream_error = (
            "No admin key is set (OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY or CONNECTIONS_FILE): "
            "showing stored data only."
        )
    alerts = None
    if state.alerts is not None and database["ok"]:
        try:
            alerts = state.alerts.health()
        except StoreUnavailableError:
            alerts = None
    state.mappings.current()  # re-reads the file if it changed
    mapping_error = state.mappings.error
    problems = (
        not database["ok"],
        upstream_error,
        mapping_error,
        state.loop.error,
        state.pool_error,
        state.prices_error,
        alerts is not None and alerts["problem"],
    )
    return {
        "status": "degraded" if any(problems) else "ok",
        "version": __version__,
        "database": database,
        "connections": connections,
        "sync": syncs,
        "sync_error": state.loop.error,
        "upstream_error": upstream_error,
        "upstream_notes": [describe_note(n) for n in notes],
        "key_mappings_error": mapping_error,
        "pool_table_error": state.pool_error,
        "prices_file_error": state.prices_error,
        "alerts": alerts,
    }


@router.get(
    "/health",
    summary="Database, last sync per source, upstream and sync errors, version",
    responses={503: {"description": "The database is unavailable (the body says why)."}},
)
def health(request: Request, state: State, response: Response) -> dict[str, Any]:
    """Open to all, for load balancers: signed out, only ``status``; the details need sign-in."""
    report = health_report(state)
    if not report["database"]["ok"]:
        response.status_code = 503
    try:
        principal(request)
    except (SignInRequired, StoreUnavailableError):
        return {"status": report["status"]}
    return report

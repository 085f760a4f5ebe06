"""The JSON API. Routes are thin: parse, call a report, return its rows."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from usage_tracker import __version__, reports
from usage_tracker.cursors import CursorError, decode_cursor, encode_cursor
from usage_tracker.names import Names
from usage_tracker.reports import ReportError
from usage_tracker.store.schema import STORED_AS, from_stored
from usage_tracker.upstream import UpstreamError
from usage_tracker.upstream.contract import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SOURCES,
    WIDTH_SECONDS,
    buckets_stop,
)
from usage_tracker.web.security import Principal
from usage_tracker.web.state import AppState

HOUR, DAY = 3600, 86400
MINUTE_CACHE_SECONDS = 60


class ErrorDetail(BaseModel):
    message: str
    param: str | None


class ErrorBody(BaseModel):
    """Every 4xx (and the 502 of an upstream outage on the 1m path) has this body."""

    error: ErrorDetail


router = APIRouter(
    prefix="/api",
    tags=["api"],
    responses={
        400: {"model": ErrorBody, "description": "A parameter is invalid; `param` names it."}
    },
)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.app_state
    return state


State = Annotated[AppState, Depends(app_state)]


def current_names(state: AppState) -> Names:
    return reports.load_names(state.store, state.mappings.current())


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


@router.get("/usage", response_model=UsagePage, summary="Usage buckets (the upstream page shape)")
def usage(
    request: Request,
    state: State,
    _who: Principal,
    start_time: Annotated[int, Query(ge=0, description="Unix seconds, inclusive.")],
    end_time: Annotated[int | None, Query(ge=0, description="Unix seconds, exclusive.")] = None,
    bucket_width: Literal["1m", "1h", "1d"] = "1d",
    group_by: Annotated[list[str], Query(description="Repeatable; `none` for no grouping.")] = [],  # noqa: B006 - FastAPI copies defaults
    source: Annotated[str, Query(description="The usage endpoint.")] = "completions",
    limit: Annotated[int | None, Query(ge=1)] = None,
    page: Annotated[str | None, Query(description="`next_page` of the previous page.")] = None,
) -> dict[str, Any]:
    """The original tracker's contract: `1h` and `1d` buckets come from the database, `1m`
    goes upstream through a 60-second single-flight cache. Each result adds `name`."""
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
    names = current_names(state)
    if bucket_width == "1m":
        return _minute_page(
            state, names, source, start_time, end_time, groups=groups, limit=limit, page=page
        )
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None and value % HOUR:
            raise ReportError(
                f"Invalid value for '{name}': stored usage is hourly, so it must be a whole UTC "
                "hour (a multiple of 3600).",
                name,
            )
    return _stored_page(
        state,
        names,
        source,
        start_time,
        end_time,
        width=bucket_width,
        groups=groups,
        limit=limit,
        page=page,
    )


def _stored_page(
    state: AppState,
    names: Names,
    source: str,
    start: int,
    end: int | None,
    *,
    width: str,
    groups: list[str],
    limit: int,
    page: str | None,
) -> dict[str, Any]:
    spec = SOURCES[source]
    step = WIDTH_SECONDS[width]
    stop = buckets_stop(start, end, step, int(state.clock()))
    fingerprint = f"{source}:{start}:{end}:{width}:{','.join(groups)}"
    try:
        first = decode_cursor(page, fingerprint) if page else start
    except CursorError as e:
        raise ReportError(f"Invalid value for 'page': {e}.", "page") from None
    starts = list(range(first, min(stop, first + limit * step), step))
    if not starts:
        return {"object": "page", "data": [], "has_more": False, "next_page": None}
    last = min(starts[-1] + step, stop)
    time_key = "day" if width == "1d" and first % DAY == 0 else "hour"
    columns = [STORED_AS[g] for g in groups]
    rows = state.store.usage_totals(
        first, last, [time_key, *columns], sources=[source], metrics=spec.metrics
    )
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
    after = starts[-1] + step
    more = after < stop
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": t,
                "end_time": min(t + step, stop),
                "results": results[t],
            }
            for t in starts
        ],
        "has_more": more,
        "next_page": encode_cursor(after, fingerprint) if more else None,
    }


def _minute_page(
    state: AppState,
    names: Names,
    source: str,
    start: int,
    end: int | None,
    *,
    groups: list[str],
    limit: int,
    page: str | None,
) -> dict[str, Any]:
    """One upstream page of 1m buckets, shared by identical requests for 60 s."""
    if state.client is None:
        raise ReportError(
            "bucket_width=1m reads OpenAI directly and no admin key is set.", "bucket_width"
        )
    key = (source, start, end, tuple(groups), limit, page)
    with state.cache_lock:
        lock = state.minute_locks.setdefault(key, threading.Lock())
    with lock:  # single flight: the second identical request waits and reuses the answer
        hit = state.minute_cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return dict(hit[1])
        try:
            buckets, cursor = state.client.usage_page(
                source, start, end, bucket_width="1m", group_by=groups, limit=limit, page=page
            )
        except UpstreamError as e:
            raise UpstreamFailure(str(e)) from None
        body = {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": b.start_time,
                    "end_time": b.end_time,
                    "results": [_minute_result(names, source, r) for r in b.results],
                }
                for b in buckets
            ],
            "has_more": cursor is not None,
            "next_page": cursor,
        }
        now = time.monotonic()
        with state.cache_lock:  # forget expired answers so the cache stays small
            for old in [k for k, (expires, _) in state.minute_cache.items() if expires <= now]:
                del state.minute_cache[old]
                state.minute_locks.pop(old, None)
            state.minute_cache[key] = (now + MINUTE_CACHE_SECONDS, body)
        return body


def _minute_result(names: Names, source: str, r: Any) -> dict[str, Any]:
    spec = SOURCES[source]
    out: dict[str, Any] = {"object": spec.object, **{m: r.metrics.get(m, 0) for m in spec.metrics}}
    out.update({d: r.dimension(d) for d in spec.group_by})
    out["name"] = _result_name(names, out)
    return out


class UpstreamFailure(Exception):
    """OpenAI could not answer a request that must go upstream (502 with the reason)."""


@router.get("/summary", summary="Totals per person, key, user, project, model and source")
def summary(
    state: State,
    _who: Principal,
    start_time: Annotated[int | None, Query(ge=0)] = None,
    end_time: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Over [start_time, end_time) in whole UTC hours; by default today (UTC) so far."""
    start, end = _hour_range(int(state.clock()), start_time, end_time)
    return reports.summary(state.store, current_names(state), start, end)


def _hour_range(now: int, start: int | None, end: int | None) -> tuple[int, int]:
    start = now - now % DAY if start is None else start
    end = now - now % HOUR + HOUR if end is None else end
    for name, value in (("start_time", start), ("end_time", end)):
        if value % HOUR:
            raise ReportError(f"Invalid value for '{name}': must be a whole UTC hour.", name)
    if end <= start:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    return start, end


def tiers_report(state: AppState, names: Names, now: int) -> dict[str, Any]:
    settings = state.settings
    report = reports.pool_usage(
        state.store,
        names,
        state.pools,
        now,
        usage_tier=settings.usage_tier,
        sharing_projects=settings.sharing_projects,
    )
    return {
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
        "pool_table_error": state.pool_error,
    }


def _ranked(tokens: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": k, "tokens": v} for k, v in sorted(tokens.items(), key=lambda kv: -kv[1])]


@router.get("/tiers", summary="Today's complimentary-token pools (UTC day)")
def tiers(state: State, _who: Principal) -> dict[str, Any]:
    return tiers_report(state, current_names(state), int(state.clock()))


def health_report(state: AppState) -> dict[str, Any]:
    now = int(state.clock())
    try:
        state.store.ping()
        database: dict[str, Any] = {"ok": True, "backend": state.store.backend}
    except Exception as e:
        database = {"ok": False, "backend": state.store.backend, "error": type(e).__name__}
    syncs = []
    errors = []
    for s in state.store.sync_states() if database["ok"] else []:
        last = s["last_success_at"]
        syncs.append(
            {
                "source": s["source"],
                "last_success_at": last,
                "age_seconds": None if last is None else now - last,
                "backfill_complete": bool(s["backfill_complete"]),
                "last_error": s["last_error"],
            }
        )
        if s["last_error"]:
            errors.append(s["last_error"])
    upstream_error = errors[0] if errors else None
    if state.client is None:
        upstream_error = "No admin key is set (OPENAI_ADMIN_KEY): showing stored data only."
    state.mappings.current()  # re-reads the file if it changed
    mapping_error = state.mappings.error
    ok = database["ok"] and upstream_error is None and mapping_error is None
    return {
        "status": "ok" if ok else "degraded",
        "version": __version__,
        "database": database,
        "sync": syncs,
        "upstream_error": upstream_error,
        "key_mappings_error": mapping_error,
        "pool_table_error": state.pool_error,
    }


@router.get("/health", summary="Database, last sync per source, upstream error, version")
def health(state: State) -> dict[str, Any]:
    return health_report(state)

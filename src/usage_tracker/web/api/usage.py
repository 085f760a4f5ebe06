"""``/api/usage``: the original tracker's contract (OpenAI's usage buckets, paged by an opaque
cursor), read from the store; ``bucket_width=1m`` asks OpenAI through a bounded cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from usage_tracker import runtime
from usage_tracker.people.names import Names
from usage_tracker.providers.openai.contract import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SOURCES,
    WIDTH_SECONDS,
    align_down,
    align_up,
    buckets_stop,
)
from usage_tracker.reports import ReportError
from usage_tracker.store.schema import STORED_AS, from_stored
from usage_tracker.web.api.common import DAY, EndTime, ErrorBody, State, Time, router
from usage_tracker.web.auth import Access, Viewer
from usage_tracker.web.cursors import CursorError
from usage_tracker.web.results import as_json
from usage_tracker.web.state import AppState

EMPTY_PAGE: dict[str, Any] = {"object": "page", "data": [], "has_more": False, "next_page": None}


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
        return b",".join(map(orjson.dumps, buckets))  # 7x json.dumps's speed here

    head = encoded(chunks[0])

    def body() -> Iterator[bytes]:
        yield b'{"object":"page","data":[' + head
        for chunk in chunks[1:]:
            yield b"," + encoded(chunk)
        yield b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]

    return StreamingResponse(body(), media_type="application/json")


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

"""What every JSON route shares: the router, its error body, the rule that a one-valued parameter
is given once, the time parameters, and the connection and hour range a request names."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from usage_tracker.providers.openai.contract import (
    align_down,
    align_up,
)
from usage_tracker.reports import ReportError
from usage_tracker.web.state import AppState, current_state

HOUR = 3600
DAY = 86400


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


ConnectionParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=40,
        description="Only this connection's usage and cost (its name).",
    ),
]
ProviderParam = Annotated[
    Literal["openai", "anthropic"] | None,
    Query(description="Only the usage and cost of this provider's connections."),
]


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

"""Totals over a range and what is built on them: ``/api/summary``, the reconciliation of
estimates with the bill, the month's forecast and the exports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Response
from starlette.concurrency import run_in_threadpool

from usage_tracker import reports
from usage_tracker.people.names import Names
from usage_tracker.people.scope import Scope
from usage_tracker.providers.openai.contract import (
    align_down,
    align_up,
)
from usage_tracker.reports import ReportError, exports
from usage_tracker.reports.common import connections_where
from usage_tracker.web.api.common import (
    DAY,
    MAX_TIME,
    TIME_DOC,
    ConnectionParam,
    EndTime,
    ErrorBody,
    ProviderParam,
    State,
    hour_range,
    provisional_from,
    router,
)
from usage_tracker.web.auth import Access, Viewer
from usage_tracker.web.results import Version, as_json
from usage_tracker.web.state import AppState

NO_SUCH_CONNECTION: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No connection of that name."}
}


@router.get(
    "/summary",
    summary="Totals per person, team, key, user, project, model, source, connection, provider",
    response_model=dict[str, Any],
    responses=NO_SUCH_CONNECTION,
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
    connection: ConnectionParam = None,
    provider: ProviderParam = None,
    team: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only the usage and cost of this team's keys (teams come from the "
            "mapping file; `(no team)`: the keys of none and the costs no key carries).",
        ),
    ] = None,
) -> Response:
    """Over [start_time, end_time), widened to whole UTC hours; by default today (UTC) so far.
    The answer's `start_time` and `end_time` are the bounds served. `by.connection` and
    `by.provider` split it per connection and provider; every `by.api_key` row names its own;
    `by.team` per team, with its `cost_centre`."""
    start, end = hour_range(int(state.clock()), start_time, end_time)
    where = connections_where(access.names, connection, provider)
    if team is not None:
        where = {**(where or {}), "api_key_id": reports.keys_of_team(access.names, team)}
    key = _summary_key(state, access.version, access.scope, start, end, where)
    body = state.results.peek(key)
    if body is None:  # computed in a worker thread; an answer already made is sent from here
        body = await run_in_threadpool(
            summary_body, state, access.version, access.names, access.scope, start, end, where
        )
    return Response(body, media_type="application/json")


@router.get(
    "/reconciliation",
    summary="Billed against estimated cost per UTC day and model, and where they disagree",
    responses=NO_SUCH_CONNECTION,
)
def reconciliation(
    state: State,
    access: Viewer,
    start_time: Annotated[
        int | None,
        Query(ge=0, le=MAX_TIME, description=f"{TIME_DOC} Default: 30 days before end_time."),
    ] = None,
    end_time: EndTime = None,
    connection: ConnectionParam = None,
    provider: ProviderParam = None,
) -> dict[str, Any]:
    """Whole UTC days. `findings` lists the models whose estimate is off by more than
    `threshold_percent` of the bill, or that have no list price."""
    only = connections_where(access.names, connection, provider)
    return reconciliation_report(state, access, start_time, end_time, only)


def reconciliation_report(
    state: AppState,
    access: Access,
    start: int | None,
    end: int | None,
    only: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    if start is not None and end is not None and end <= start:
        raise ReportError("Invalid value for 'end_time': must be after start_time.", "end_time")
    end = align_up(end if end is not None else int(state.clock()) + 1, "1d")
    start = align_down(start, "1d") if start is not None else end - 30 * DAY
    return reports.reconciliation(state.store, start, end, scope=access.scope, only=only)


@router.get(
    "/forecast",
    summary="Month to date and projected month-end billed cost",
    responses=NO_SUCH_CONNECTION,
)
def forecast(
    state: State,
    access: Viewer,
    connection: ConnectionParam = None,
    provider: ProviderParam = None,
) -> dict[str, Any]:
    """For the organization, each project and each person (a member: their own), with the
    method used in `method`."""
    only = connections_where(access.names, connection, provider)
    now = int(state.clock())
    return reports.forecast(state.store, access.names, now, scope=access.scope, only=only)


EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/export",
    summary="A dashboard table or the reconciliation as CSV, JSON or Excel",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in EXPORT_TYPES.values()}},
        **NO_SUCH_CONNECTION,
    },
)
def export(
    state: State,
    access: Viewer,
    by: Literal[
        "person",
        "team",
        "key",
        "user",
        "project",
        "model",
        "connection",
        "provider",
        "reconciliation",
    ] = "person",
    format: Literal["csv", "json", "xlsx"] = "csv",
    start_time: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description=f"{TIME_DOC} Default: today's start.")
    ] = None,
    end_time: EndTime = None,
    connection: ConnectionParam = None,
    provider: ProviderParam = None,
) -> Response:
    """The rows of `/api/summary` for one grouping (tokens, requests, billed and estimated
    cost), or of `/api/reconciliation`, over the same range and with the same scope (and the
    same `connection` or `provider`)."""
    only = connections_where(access.names, connection, provider)
    if by == "reconciliation":
        report = reconciliation_report(state, access, start_time, end_time, only)
        start, end = report["start_time"], report["end_time"]
        header, rows = exports.reconciliation_table(report["days"])
    else:
        start, end = hour_range(int(state.clock()), start_time, end_time)
        summary = reports.summary(
            state.store, access.names, start, end, scope=access.scope, where=only
        )
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

"""``/api/statement``: a month's statement per team and person (admins and viewers), as JSON,
CSV or Excel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response

from usage_tracker.reports import statement_files
from usage_tracker.reports.statements import MONTH_PATTERN, Allocation, month_of, statement
from usage_tracker.web.api.common import ErrorBody, State, router
from usage_tracker.web.api.summary import EXPORT_TYPES
from usage_tracker.web.auth import Access, Staff
from usage_tracker.web.state import AppState

Month = Annotated[
    str | None,
    Query(
        pattern=MONTH_PATTERN,
        description="The UTC month, YYYY-MM (default: the last closed one's next: this month).",
    ),
]
AllocationParam = Annotated[
    str | None,
    Query(
        max_length=210,
        pattern=r"^(proportional|team:\S.*)$",
        description="`proportional` or `team:NAME` (default: STATEMENT_ALLOCATION); a closed "
        "month keeps the allocation it closed with.",
    ),
]


def statement_report(
    state: AppState, access: Access, month: str | None, allocation: str | None
) -> dict[str, Any]:
    """The statement, computed once per version of the data, month, allocation and hour (a
    month closes on the hour its revision window ends)."""
    now = int(state.clock())
    settings = state.settings
    rule = Allocation.parse(allocation or settings.statement_allocation)
    month = month or month_of(now)
    return state.results.get(
        ("statement", access.version, month, rule.rule, now // 3600),
        lambda: statement(
            state.store,
            access.names,
            month,
            now,
            allocation=rule,
            lookback_days=settings.costs_lookback_days,
        ),
    )


@router.get(
    "/statement",
    summary="A month's statement per team and person, totalling the month's bill",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in EXPORT_TYPES.values()}},
        404: {"model": ErrorBody, "description": "The month has not begun."},
    },
)
def statement_route(
    state: State,
    access: Staff,
    month: Month = None,
    format: Literal["json", "csv", "xlsx"] = "json",
    allocation: AllocationParam = None,
) -> Response:
    """Per team (with its cost centre) and per person within it: billed cost per provider and
    connection, tokens and requests (`lines`, each `usage`, `allocated`, `adjustment` or
    `rounding`); what no team carries (`unassigned`) shared by the allocation; `total_usd` is
    the month's bill to the cent plus `adjustments_usd` (revisions of closed months). A month
    is `closed` COSTS_LOOKBACK_DAYS after its end (`closes_at`) and never changes after.
    Admins and viewers only."""
    body = statement_report(state, access, month, allocation)
    month = body["month"]
    return Response(
        statement_files.render(body, format),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="statement-{month}.{format}"'}
        if format != "json"
        else None,
    )

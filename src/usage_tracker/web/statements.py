"""The Statements page (admins and viewers): a month's statement per team and person, with the
month and allocation to pick, and its CSV and Excel files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from usage_tracker import __version__
from usage_tracker.reports.statements import MONTH_PATTERN, month_of, month_range
from usage_tracker.web.api.common import State
from usage_tracker.web.api.statements import AllocationParam, statement_report
from usage_tracker.web.auth import Staff
from usage_tracker.web.templating import templates

router = APIRouter(include_in_schema=False)
MONTHS_SHOWN = 13


@router.get("/statements", response_class=HTMLResponse)
def statements_page(
    request: Request,
    state: State,
    access: Staff,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
    allocation: AllocationParam = None,
) -> HTMLResponse:
    now = int(state.clock())
    body = statement_report(state, access, month, allocation)
    months = [month_of(now)]
    while len(months) < MONTHS_SHOWN:
        months.append(month_of(month_range(months[-1])[0] - 1))
    context = {
        "request": request,
        "version": __version__,
        "who": access.who,
        "statement": body,
        "months": months,
        "allocation": allocation or "",
        "default_allocation": state.settings.statement_allocation,
    }
    return templates.TemplateResponse(request, "statements.html", context)

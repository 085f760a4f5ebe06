"""The Limits page (admins and viewers): each connection's spend limits, spend alerts and rate
limits, with the month's spend against each, and when they were read; and the actions budget
rules took (deciding them is the Alerts page's, for admins)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from usage_tracker import __version__
from usage_tracker.web.api.actions import actions_report
from usage_tracker.web.api.common import State
from usage_tracker.web.api.limits import limits_report
from usage_tracker.web.auth import Staff
from usage_tracker.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/limits", response_class=HTMLResponse)
def limits_page(request: Request, state: State, access: Staff) -> HTMLResponse:
    now = int(state.clock())
    report = limits_report(state, access, now)
    by_connection: dict[str, list[dict[str, object]]] = {}
    for row in report["limits"]:
        by_connection.setdefault(str(row["connection"]), []).append(row)
    context = {
        "request": request,
        "version": __version__,
        "who": access.who,
        "report": report,
        "by_connection": by_connection,
        "now": now,
        "actions": actions_report(state, access),
        "csrf": None,
    }
    return templates.TemplateResponse(request, "limits.html", context)

"""The Alerts page and ``/api/alerts`` (admins): the rules in force, what they raise now, the
alerts of the last 30 days with each delivery's fate, and a test message to every channel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from usage_tracker import __version__
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.alerts.rules import describe_rules
from usage_tracker.store import alerts as rows
from usage_tracker.web.auth import Admin, check_csrf, csrf_token
from usage_tracker.web.state import app_state
from usage_tracker.web.templating import templates

DAY = 86400
router = APIRouter()
pages = APIRouter(include_in_schema=False)


def _engine(request: Request) -> AlertEngine:
    engine = app_state(request).alerts
    if engine is None:
        raise HTTPException(503, "Alerts are not running yet; try again in a few seconds.")
    return engine


def alerts_report(request: Request) -> dict[str, Any]:
    state, engine = app_state(request), _engine(request)
    now = int(state.clock())
    with state.store.transaction() as conn:
        recent = rows.recent(conn, now - 30 * DAY)
        troubled = rows.troubled(conn)
    fired = {a["dedupe_key"] for a in recent}
    preview = [
        {"title": f.title, "kind": f.kind, "period": f.period, "sent": f.dedupe_key in fired}
        for f in engine.preview(now)
    ]
    for alert in recent:
        alert.pop("payload", None)
    return {
        "health": engine.health(),
        "channels": [{"label": c} for c in engine.default_labels()],
        "rules": describe_rules(engine.rules),
        "now": preview,
        "recent": recent,
        "failing": troubled,
    }


@router.get("/api/alerts", summary="Alert rules, what they raise now, recent alerts (admins)")
def alerts_json(request: Request, _admin: Admin) -> dict[str, Any]:
    return alerts_report(request)


def _page(request: Request, who: Any, tested: list[dict[str, Any]] | None = None) -> HTMLResponse:
    context = {
        "request": request,
        "version": __version__,
        "who": who,
        "csrf": csrf_token(request, who),
        "report": alerts_report(request),
        "tested": tested,
    }
    return templates.TemplateResponse(request, "alerts.html", context)


@pages.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, who: Admin) -> HTMLResponse:
    return _page(request, who)


@pages.post("/alerts/test", response_class=HTMLResponse)
def send_test(
    request: Request,
    who: Admin,
    csrf_token_: Annotated[str, Form(alias="csrf_token", max_length=200)] = "",
) -> HTMLResponse:
    """A test message to every default channel, with each one's result on the page."""
    check_csrf(request, who, csrf_token_)
    results = [{"channel": c, "error": e} for c, e in _engine(request).send_test()]
    return _page(request, who, results)

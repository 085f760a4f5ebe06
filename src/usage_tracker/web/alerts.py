"""The Alerts page and ``/api/alerts`` (admins): the rules in force, what they raise now, the
alerts of the last 30 days with each delivery's fate, a test message to every channel, and the
rules and channels admins set here (stored in the database, audited; ALERTS_FILE wins over the
rules, ALERT_URLS' channels are used as well). Every process builds its engine again when they
change, whichever replica changed them."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usage_tracker import __version__, runtime
from usage_tracker.alerts.channels import Channel, check_urls, scheme_of
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.alerts.rules import AlertRulesError, describe_rules, parse_rules
from usage_tracker.settings import SettingsError
from usage_tracker.store import alerts as rows
from usage_tracker.store import people as audit
from usage_tracker.web.api.actions import actions_report
from usage_tracker.web.auth import Admin, CsrfForm, access, check_csrf, csrf_token
from usage_tracker.web.state import AppState, app_state
from usage_tracker.web.templating import templates

log = logging.getLogger(__name__)
DAY = 86400
router = APIRouter()
pages = APIRouter(include_in_schema=False)


def _fingerprint(stored: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(stored.items())).encode()).hexdigest()


def build_engine(state: AppState, stored: Mapping[str, str]) -> AlertEngine:
    """The engine of the rules and channels in force with ``stored`` (raises SettingsError)."""
    rules, urls = runtime.alert_rules(state.settings, stored)
    engine = runtime.alert_engine(
        state.settings,
        state.store,
        rules=rules,
        urls=urls,
        pools=state.pools,
        mappings=state.mappings,
        clock=state.clock,
    )
    engine.fingerprint = _fingerprint(stored)
    return engine


def current_engine(state: AppState) -> AlertEngine | None:
    """The engine, built again first when the rules or channels stored by the Alerts page
    changed since it was built (in this process or another)."""
    engine = state.alerts
    if engine is None:
        return None
    with state.store.transaction() as conn:
        stored = rows.settings(conn)
    if _fingerprint(stored) == engine.fingerprint:
        return engine
    try:
        fresh = build_engine(state, stored)
    except SettingsError as e:  # stored before this version read it differently: say so
        log.error("alerts: %s; the previous rules stay in force", e)
        engine.status.error = str(e)
        return engine
    fresh.status = engine.status
    state.alerts = fresh
    return fresh


def _engine(request: Request) -> AlertEngine:
    engine = current_engine(app_state(request))
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
    with state.store.transaction() as conn:
        stored = rows.settings(conn)
    added = {Channel(v).id for k, v in stored.items() if k.startswith(rows.CHANNEL)}
    return {
        "health": engine.health(),
        "channels": [
            {
                "label": engine.channels.label(Channel(u).id),
                "id": Channel(u).id,
                "from_page": Channel(u).id in added,
            }
            for u in engine.default_urls
        ],
        "rules_file": str(state.settings.alerts_file) if state.settings.alerts_file else None,
        "rules_text": stored.get(rows.RULES),
        "rules": describe_rules(engine.rules),
        "now": preview,
        "recent": recent,
        "failing": troubled,
    }


@router.get("/api/alerts", summary="Alert rules, what they raise now, recent alerts (admins)")
def alerts_json(request: Request, _admin: Admin) -> dict[str, Any]:
    return alerts_report(request)


def _page(
    request: Request,
    who: Any,
    tested: list[dict[str, Any]] | None = None,
    *,
    error: str | None = None,
    rules_text: str | None = None,
) -> HTMLResponse:
    report = alerts_report(request)
    context = {
        "actions": actions_report(app_state(request), access(request, who)),
        "request": request,
        "version": __version__,
        "who": who,
        "csrf": csrf_token(request, who),
        "report": report,
        "tested": tested,
        "error": error,
        "rules_text": report["rules_text"] if rules_text is None else rules_text,
    }
    return templates.TemplateResponse(
        request, "alerts.html", context, status_code=400 if error else 200
    )


@pages.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, who: Admin) -> HTMLResponse:
    return _page(request, who)


@pages.post("/alerts/test", response_class=HTMLResponse)
def send_test(
    request: Request,
    who: Admin,
    csrf_token_: CsrfForm = "",
) -> HTMLResponse:
    """A test message to every default channel, with each one's result on the page."""
    check_csrf(request, who, csrf_token_)
    results = [{"channel": c, "error": e} for c, e in _engine(request).send_test()]
    return _page(request, who, results)


@pages.post("/alerts/rules", response_class=HTMLResponse)
def save_rules(
    request: Request,
    who: Admin,
    rules: Annotated[str, Form(max_length=100_000)] = "",
    csrf_token_: CsrfForm = "",
) -> Response:
    """The rules, in the format of an alerts file (YAML); empty: the defaults again."""
    check_csrf(request, who, csrf_token_)
    state = app_state(request)
    if state.settings.alerts_file is not None:
        raise HTTPException(
            409, f"ALERTS_FILE ({state.settings.alerts_file}) is set and wins: edit that file."
        )
    text = rules.replace("\r\n", "\n")
    if text.strip():
        try:
            parse_rules(text, runtime.STORED_RULES)
        except AlertRulesError as e:
            return _page(request, who, error=str(e), rules_text=text)
    now = int(time.time())
    with state.store.transaction() as conn:
        rows.set_setting(conn, rows.RULES, text if text.strip() else None, actor=who.email, now=now)
        detail = f"{len(text.splitlines())} lines" if text.strip() else "the defaults again"
        audit.record(conn, who.email, "alerts.rules", detail, now)
    return RedirectResponse("/alerts", status_code=303)


@pages.post("/alerts/channels", response_class=HTMLResponse)
def add_channel(
    request: Request,
    who: Admin,
    url: Annotated[str, Form(max_length=4000)],
    csrf_token_: CsrfForm = "",
) -> Response:
    """A channel every alert goes to: an Apprise URL (never shown again, only redacted)."""
    check_csrf(request, who, csrf_token_)
    url = url.strip()
    try:
        check_urls((url,))
    except ValueError:
        message = (
            f"That channel ({scheme_of(url)}://…) is not a URL Apprise can use; see "
            "https://appriseit.com/services/ for each service's form."
        )
        return _page(request, who, error=message)
    channel = Channel(url)
    now = int(time.time())
    with app_state(request).store.transaction() as conn:
        rows.set_setting(conn, rows.CHANNEL + channel.id, url, actor=who.email, now=now)
        audit.record(conn, who.email, "alerts.channel.add", channel.label, now)
    return RedirectResponse("/alerts#channels", status_code=303)


@pages.post("/alerts/channels/{channel_id}/remove")
def remove_channel(
    request: Request,
    who: Admin,
    channel_id: str,
    csrf_token_: CsrfForm = "",
) -> Response:
    check_csrf(request, who, csrf_token_)
    now = int(time.time())
    with app_state(request).store.transaction() as conn:
        url = rows.settings(conn).get(rows.CHANNEL + channel_id)
        if url is None:
            raise HTTPException(404, "No such channel set on this page.")
        rows.set_setting(conn, rows.CHANNEL + channel_id, None, actor=who.email, now=now)
        audit.record(conn, who.email, "alerts.channel.remove", Channel(url).label, now)
    return RedirectResponse("/alerts#channels", status_code=303)

"""The dashboard page and the offline API docs. The page renders the same report rows as the
JSON API; its tables work without JavaScript, which only adds charts, sorting and live refresh."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from usage_tracker import __version__, reports
from usage_tracker.names import Names
from usage_tracker.reports import ReportError
from usage_tracker.scope import EVERYTHING, Scope
from usage_tracker.upstream.contract import SOURCES
from usage_tracker.web import charts
from usage_tracker.web.api import (
    State,
    health_report,
    hour_range,
    provisional_from,
    reconciliation_report,
    summary_body,
    tiers_report,
)
from usage_tracker.web.auth import CurrentUser, Viewer, csrf_token
from usage_tracker.web.results import Version
from usage_tracker.web.state import AppState
from usage_tracker.web.templating import compact, templates, utc

HOUR, DAY = 3600, 86400
EARLIEST = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
PRESETS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "7 days",
    "30d": "30 days",
    "mtd": "Month to date",
    "custom": "Custom",
}
Table = Literal["person", "model", "project", "user", "api_key"]
TABLES: dict[Table, str] = {
    "person": "People",
    "model": "Models",
    "project": "Projects",
    "user": "Users",
    "api_key": "API keys",
}
TABLE_ROWS = 25
"""Rows of a table on the page until its "show all" (the most tokens first)."""
OTHER_SOURCE_COUNTERS = {
    "decisions": ("tokens", "tokens"),
    "embeddings": ("input_tokens", "tokens"),
    "moderations": ("input_tokens", "tokens"),
    "images": ("images", "images"),
    "audio_speeches": ("characters", "characters"),
    "audio_transcriptions": ("seconds", "seconds"),
    "vector_stores": ("usage_bytes", "stored"),
    "code_interpreter_sessions": ("num_sessions", "sessions"),
    "file_search_calls": ("num_requests", "calls"),
    "web_search_calls": ("num_requests", "calls"),
}

router = APIRouter(include_in_schema=False)


def date_range(
    preset: str, now: int, start: str | None = None, end: str | None = None
) -> tuple[int, int]:
    """[start, end) in whole UTC hours for a preset; ``custom`` takes inclusive dates."""
    hour_end = now - now % HOUR + HOUR
    today = now - now % DAY
    if preset == "today":
        return today, hour_end
    if preset == "yesterday":
        return today - DAY, today
    if preset in ("7d", "30d"):
        return hour_end - int(preset[:-1]) * DAY, hour_end
    if preset == "mtd":
        first = dt.datetime.fromtimestamp(now, dt.UTC).replace(day=1, hour=0, minute=0, second=0)
        return int(first.timestamp()), hour_end
    try:
        first_day = dt.date.fromisoformat(start or "")
        last_day = dt.date.fromisoformat(end or start or "")
    except ValueError:
        raise ReportError(
            "a custom range needs start and end dates as YYYY-MM-DD", "start"
        ) from None
    lo = int(dt.datetime.combine(first_day, dt.time(), dt.UTC).timestamp())
    hi = int(dt.datetime.combine(last_day, dt.time(), dt.UTC).timestamp()) + DAY
    if hi <= lo:
        raise ReportError("the custom range ends before it starts", "end")
    if lo >= hour_end:
        raise ReportError("the custom range starts in the future", "start")
    if lo < EARLIEST:
        raise ReportError("the custom range starts before 2020, before any usage data", "start")
    return lo, min(hi, hour_end)


def _other_source(row: dict[str, Any]) -> tuple[str, str, str]:
    """(source, amount with its unit, requests) for the "other sources" table."""
    counter, unit = OTHER_SOURCE_COUNTERS[row["source"]]
    amount = row[counter]
    # Vector-store bytes are sampled per bucket, so a range sums them: GB-days, not GB.
    shown = (
        f"{amount / 1e9:,.1f} GB·days" if counter == "usage_bytes" else f"{compact(amount)} {unit}"
    )
    has_requests = "num_model_requests" in SOURCES[row["source"]].metrics
    return row["source"], shown, f"{row['num_model_requests']:,}" if has_requests else "—"


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    state: State,
    access: Viewer,
    range: Annotated[
        Literal["today", "yesterday", "7d", "30d", "mtd", "custom"], Query()
    ] = "today",
    start: str | None = None,
    end: str | None = None,
    stack: Literal["person", "model"] = "person",
    person: str | None = None,
    model: str | None = None,
    expand: Annotated[list[Table] | None, Query(alias="all")] = None,
) -> HTMLResponse:
    now = int(state.clock())
    try:
        lo, hi = date_range(range, now, start, end)
    except ReportError as e:
        lo, hi = date_range("today", now)
        request.state.range_error = str(e)
    names, scope = access.names, access.scope
    view = View(lo, hi, stack, person, model)
    summary, (chart_svg, legend), findings = page_figures(state, access.version, names, scope, view)
    health = health_report(state)
    synced = [s["last_success_at"] for s in health["sync"] if s["last_success_at"]]
    context: dict[str, Any] = {
        "request": request,
        "who": access.who,
        "csrf": csrf_token(request, access.who),
        "version": __version__,
        "presets": PRESETS,
        "preset": range,
        "custom_start": start or utc(lo, "%Y-%m-%d"),
        "custom_end": end or utc(hi - 1, "%Y-%m-%d"),
        "start": lo,
        "end": hi,
        "stack": stack,
        "person": person,
        "model": model,
        "summary": summary,
        "chart_svg": chart_svg,
        "legend": legend,
        "chart_bucket": reports.chart_bucket(lo, hi),
        "pools": tiers_report(state, access, now),
        "cost_findings": [f for f in findings if f["finding"] != "unpriced"],
        "forecast": state.results.get(
            ("forecast", access.version, scope, now - now % DAY),
            lambda: reports.forecast(state.store, names, now, scope=scope),
        ),
        "month_trend": (
            reports.daily_billed(state.store, names, now, person, scope=scope) if person else []
        ),
        "health": health,
        "data_as_of": min(synced) if synced else None,
        "refresh_seconds": state.settings.refresh_seconds,
        "range_error": getattr(request.state, "range_error", None),
        "now": now,
    }
    # The tables are most of the page: rendered once per version of the data and view.
    links = (range, context["custom_start"], context["custom_end"])
    expanded = tuple(sorted(set(expand or ())))
    context["tables_html"] = state.results.get(
        ("tables", access.version, scope, view, links, expanded),
        lambda: _tables(context, expanded),
    )
    return templates.TemplateResponse(request, "dashboard.html", context)


def _tables(context: dict[str, Any], expanded: tuple[str, ...]) -> Markup:
    """The usage tables: each its first TABLE_ROWS rows (the most tokens) unless ``expanded``,
    with a link to the rest."""
    summary = context["summary"]
    others = [
        _other_source(r) for r in summary["by"]["source"] if r["source"] in OTHER_SOURCE_COUNTERS
    ]
    tables = {}
    for key, title in TABLES.items():
        rows = [
            r
            for r in summary["by"][key]
            if r["tokens"] or r.get("num_model_requests") or r.get("billed_cost")
        ]
        shown = rows if key in expanded else rows[:TABLE_ROWS]
        more = _page_link(context, expanded=[*expanded, key], anchor=f"table-{key}")
        tables[key] = {"title": title, "rows": shown, "total": len(rows), "more": more}
    fragment = templates.env.get_template("_tables.html")
    return Markup(fragment.render({**context, "tables": tables, "others": others}))  # noqa: S704 - autoescaped


def _page_link(context: dict[str, Any], *, expanded: list[str], anchor: str) -> str:
    """This view's address with every table in ``expanded`` shown whole."""
    query: list[tuple[str, str]] = [
        ("range", context["preset"]),
        ("start", context["custom_start"]),
        ("end", context["custom_end"]),
        ("stack", context["stack"]),
    ]
    query += [(k, context[k]) for k in ("person", "model") if context[k]]
    query += [("all", key) for key in expanded]
    return f"?{urlencode(query)}#{anchor}"


@dataclass(frozen=True)
class View:
    """What a dashboard view shows: a range, the chart's stacking, and its filters."""

    lo: int
    hi: int
    stack: str = "person"
    person: str | None = None
    model: str | None = None


Figures = tuple[dict[str, Any], tuple[Markup, list[charts.Legend]], list[dict[str, Any]]]


def page_figures(
    state: AppState, version: Version, names: Names, scope: Scope, view: View
) -> Figures:
    """The summary, the chart and the reconciliation's findings of a view, computed once per
    version of the data."""
    provisional = provisional_from(state)

    def figures() -> Figures:
        where: dict[str, list[str]] = {}
        if view.person:
            keys = reports.keys_of_person(state.store, names, view.lo, view.hi, view.person)
            where["api_key_id"] = keys or ["-"]
        if view.model:
            where["model"] = [view.model]
        summary = reports.summary(
            state.store,
            names,
            view.lo,
            view.hi,
            where=where or None,
            scope=scope,
            provisional_from=provisional,
        )
        chart = reports.usage_over_time(
            state.store, names, view.lo, view.hi, view.stack, where=scope.narrow(where or None)
        )
        findings = reports.reconciliation(
            state.store, view.lo, view.hi, scope=scope, per_day=False
        )["findings"]
        label = f"Tokens per {chart['bucket']}, by {view.stack}"
        return summary, charts.stacked_bars(chart, label=label), findings

    return state.results.get(("page", version, scope, view, provisional), figures)


WARMED = ("today", "yesterday", "7d", "30d", "mtd")


def warm(state: AppState) -> None:
    """Compute what the range presets show everyone for the data's current version, so that
    the first view after a sync is answered from memory. Run after every sync pass."""
    results = state.results
    version = results.version()
    names = results.names(version)
    now = int(state.clock())
    for preset in WARMED:
        lo, hi = date_range(preset, now)
        page_figures(state, version, names, EVERYTHING, View(lo, hi))
    start, end = hour_range(now, None, None)
    summary_body(state, version, names, EVERYTHING, start, end)
    state.results.get(
        ("forecast", version, EVERYTHING, now - now % DAY),
        lambda: reports.forecast(state.store, names, now),
    )


def unavailable_page(request: Request, message: str, headers: dict[str, str]) -> HTMLResponse:
    """The page shown, with status 503, while the database cannot be read."""
    context = {"request": request, "message": message, "version": __version__}
    return templates.TemplateResponse(
        request, "unavailable.html", context, status_code=503, headers=headers
    )


@router.get("/reconciliation", response_class=HTMLResponse)
def reconciliation_page(
    request: Request,
    state: State,
    access: Viewer,
    start: str | None = None,
    end: str | None = None,
) -> HTMLResponse:
    """Billed against estimated cost per model and per day (default: the last 30 days)."""
    now = int(state.clock())
    try:
        lo, hi = date_range("custom", now, start, end) if start else (None, None)
    except ReportError as e:
        lo, hi = None, None
        request.state.range_error = str(e)
    report = reconciliation_report(state, access, lo, hi)
    context = {
        "request": request,
        "version": __version__,
        "who": access.who,
        "report": report,
        "range_error": getattr(request.state, "range_error", None),
    }
    return templates.TemplateResponse(request, "reconciliation.html", context)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, who: CurrentUser) -> HTMLResponse:
    """Swagger UI from vendored files (no CDN), started by a static script (strict CSP)."""
    context = {"request": request, "who": who, "version": __version__}
    return templates.TemplateResponse(request, "docs.html", context)

"""The dashboard page and the offline API docs. The page renders the same report rows as the
JSON API; its tables work without JavaScript, which only adds charts, sorting and live refresh."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from usage_tracker import __version__, reports
from usage_tracker.people.names import Names
from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.reports import ReportError
from usage_tracker.reports.common import connections_where
from usage_tracker.web import charts
from usage_tracker.web.api.common import State, hour_range, provisional_from
from usage_tracker.web.api.health import health_report
from usage_tracker.web.api.limits import limits_report
from usage_tracker.web.api.summary import reconciliation_report, summary_body
from usage_tracker.web.api.tiers import tiers_report
from usage_tracker.web.auth import Access, CurrentUser, Viewer, csrf_token
from usage_tracker.web.results import Version
from usage_tracker.web.state import AppState
from usage_tracker.web.templating import compact, templates, utc

HOUR, DAY = 3600, 86400
EARLIEST = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
PRESETS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "mtd": "Month to date",
    "lastmonth": "Last month",
    "lastquarter": "Last quarter",
    "custom": "Custom",
}
"""Every preset is whole UTC days (today's up to the current hour): costs are billed per UTC
day, so the money of a range is exactly that of its days."""
Preset = Literal["today", "yesterday", "7d", "30d", "mtd", "lastmonth", "lastquarter", "custom"]
Table = Literal["person", "team", "model", "project", "user", "api_key", "connection"]
TABLES: dict[Table, str] = {
    "person": "People",
    "team": "Teams",
    "model": "Models",
    "project": "Projects",
    "user": "Users",
    "api_key": "API keys",
    "connection": "Connections",
}
"""The dashboard's tables (Teams only when the mapping file names any, Connections only when
there is more than one)."""
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
SHOWN = tuple(
    dict.fromkeys(
        [
            "input_cached_tokens",
            "num_model_requests",
            *(c for c, _ in OTHER_SOURCE_COUNTERS.values() if c != "tokens"),
        ]
    )
)
"""The counters the page shows besides input and output tokens (``tokens`` is their sum): a
first view sums only these."""

router = APIRouter(include_in_schema=False)


def date_range(
    preset: str, now: int, start: str | None = None, end: str | None = None
) -> tuple[int, int]:
    """[start, end) for a preset: whole UTC days, today's up to the end of the current hour;
    ``custom`` takes inclusive dates."""
    hour_end = now - now % HOUR + HOUR
    today = now - now % DAY
    if preset == "today":
        return today, hour_end
    if preset == "yesterday":
        return today - DAY, today
    if preset in ("7d", "30d"):  # today and the days before it
        return today - (int(preset[:-1]) - 1) * DAY, hour_end
    month = dt.datetime.fromtimestamp(today, dt.UTC).date().replace(day=1)
    if preset == "mtd":
        return _midnight(month), hour_end
    if preset == "lastmonth":
        return _midnight((month - dt.timedelta(days=1)).replace(day=1)), _midnight(month)
    if preset == "lastquarter":
        this_quarter = month.replace(month=(month.month - 1) // 3 * 3 + 1)
        previous = (this_quarter - dt.timedelta(days=1)).replace(day=1)
        previous = previous.replace(month=(previous.month - 1) // 3 * 3 + 1)
        return _midnight(previous), _midnight(this_quarter)
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


def no_keys_notice(state: AppState, access: Any) -> str | None:
    """For a member whose email owns no key: that, and whom to ask (None for anyone else)."""
    who = access.who
    if who.is_staff or access.scope.keys:
        return None
    from usage_tracker.store import accounts

    with state.store.transaction() as conn:
        admins = [a["email"] for a in accounts.accounts(conn) if a["role"] == "admin"]
    admins = list(dict.fromkeys([*state.settings.admin_emails, *admins]))
    ask = f"ask an admin ({', '.join(admins[:3])})" if admins else "ask an admin"
    return (
        f"No API key is reported as owned by {who.email}, so there is nothing of yours to show "
        f"yet. A key is yours when OpenAI names your email as its owner, or when an admin "
        f"assigns it to you on the People page: {ask} to assign your keys."
    )


def paused_notices(state: AppState, access: Any) -> list[dict[str, Any]]:
    """For a member: the actions that paused one of their keys and still hold (what, when,
    why, whom to ask); none for anyone else (the Alerts page shows them every action)."""
    if access.who.is_staff:
        return []
    from usage_tracker.reports.actions import actions

    return [
        a
        for a in actions(state.store, access.scope, 50)
        if a["kind"] == "pause_keys"
        and a["state"] in ("done", "resuming")
        and any(t["changed"] for t in a["targets"])
    ]


def _has_teams(names: Names) -> bool:
    teams = names.teams
    return bool(teams.keys or teams.people or teams.projects or teams.emails)


def _filters(
    names: Names,
    key: str | None,
    project: str | None,
    user: str | None,
    connection: str | None = None,
    provider: str | None = None,
    team: str | None = None,
) -> list[tuple[str, str, str, str]]:
    """The provider, connection, team, key, project and user drill-downs of a view: (what, its
    name, parameter, value)."""
    shown = []
    if team is not None:
        shown.append(("team", team, "team", team))
    if provider is not None:
        shown.append(("provider", PROVIDER_NAMES.get(provider, provider), "provider", provider))
    if connection is not None:
        shown.append(("connection", connection, "connection", connection))
    if key is not None:
        shown.append(("key", names.key(key), "key", key))
    if project is not None:
        shown.append(("project", names.project(project), "project", project))
    if user is not None:
        shown.append(("user", names.user(user), "user", user))
    return shown


def picked_range(
    preset: str, now: int, start: str | None, end: str | None, *, fallback: str
) -> dict[str, Any]:
    """What a page with the range selector shows of its range: [``start``, ``end``) of the
    preset (the ``fallback`` one, with ``range_error`` saying why, when the dates are wrong),
    the selector's state and the UTC days billed."""
    error = None
    try:
        lo, hi = date_range(preset, now, start, end)
    except ReportError as e:
        lo, hi = date_range(fallback, now)
        error = str(e)
    return {
        "presets": PRESETS,
        "preset": preset,
        "custom_start": start or utc(lo, "%Y-%m-%d"),
        "custom_end": end or utc(hi - 1, "%Y-%m-%d"),
        "start": lo,
        "end": hi,
        "billed_days": billed_days(lo, hi),
        "range_error": error,
    }


def _forecast_of(forecast: dict[str, Any], person: str | None) -> dict[str, Any]:
    """The organization's figures, or those of the person the page is narrowed to (zero when
    nothing of theirs was billed this month or lately)."""
    if person is None:
        return dict(forecast["organization"])
    for row in forecast["people"]:
        if row["name"] == person:
            return dict(row)
    zero = Decimal(0)
    return dict.fromkeys(forecast["organization"], zero)


def _midnight(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


def billed_days(start: int, end: int) -> tuple[str, str, int]:
    """The UTC days whose billed cost a range [start, end) shows: (first, last, how many)."""
    first = start - start % DAY
    last = (end - 1) - (end - 1) % DAY
    return utc(first, "%Y-%m-%d"), utc(last, "%Y-%m-%d"), (last - first) // DAY + 1


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
    range: Annotated[Preset, Query()] = "today",
    start: str | None = None,
    end: str | None = None,
    stack: Literal["person", "team", "model", "api_key"] = "person",
    person: str | None = None,
    model: str | None = None,
    key: str | None = None,
    project: str | None = None,
    user: str | None = None,
    connection: str | None = None,
    provider: str | None = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    expand: Annotated[list[Table] | None, Query(alias="all")] = None,
) -> HTMLResponse:
    now = int(state.clock())
    picked = picked_range(range, now, start, end, fallback="today")
    lo, hi = picked["start"], picked["end"]
    names, scope = access.names, access.scope
    connection, provider = _picked_connection(connection, provider)
    view = View(lo, hi, stack, person, model, key, project, user, connection, provider, team)
    summary, (chart_svg, legend), findings = page_figures(state, access.version, names, scope, view)
    forecast = state.results.get(
        ("forecast", access.version, scope, now - now % DAY),
        lambda: reports.forecast(state.store, names, now, scope=scope),
    )
    health = health_report(state)
    synced = [s["last_success_at"] for s in health["sync"] if s["last_success_at"]]
    context: dict[str, Any] = {
        "request": request,
        "who": access.who,
        "csrf": csrf_token(request, access.who),
        "version": __version__,
        **picked,
        "stack": stack,
        "person": person,
        "model": model,
        "filters": _filters(access.names, key, project, user, connection, provider, team),
        "has_teams": _has_teams(names),
        "several_connections": len(names.connections) > 1,
        "connections": _connection_choices(names, connection, provider),
        "no_keys": no_keys_notice(state, access),
        "paused": paused_notices(state, access),
        "summary": summary,
        "chart_svg": chart_svg,
        "legend": legend,
        "chart_bucket": reports.chart_bucket(lo, hi),
        "pool_panels": _pool_panels(state, access, now, view),
        "project_limits": _project_limits(state, access, now),
        "cost_findings": [f for f in findings if f["finding"] != "unpriced"],
        "forecast": forecast,
        "forecast_of": _forecast_of(forecast, person),
        "month_trend": (
            reports.daily_billed(state.store, names, now, person, scope=scope) if person else []
        ),
        "health": health,
        "upstream_of": _upstream_of(health),
        "data_as_of": min(synced) if synced else None,
        "refresh_seconds": state.settings.refresh_seconds,
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


PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}


def _upstream_of(health: dict[str, Any]) -> str | None:
    """The provider a banner's upstream error is of, where every configured connection is of
    one (with several providers the error names its connection; with none, it says so)."""
    configured = {c["provider"] for c in health["connections"] if c["configured"]}
    return PROVIDER_NAMES.get(configured.pop()) if len(configured) == 1 else None


def _picked_connection(
    connection: str | None, provider: str | None
) -> tuple[str | None, str | None]:
    """The selector's choice: "All" (an empty value) is no filter; an unknown provider is a
    400 (an unknown connection is a 404, from the filter itself)."""
    if provider and provider not in PROVIDER_NAMES:
        known = ", ".join(PROVIDER_NAMES)
        raise ReportError(f"Invalid value for 'provider': one of {known}.", "provider")
    return connection or None, provider or None


def _connection_choices(
    names: Names, connection: str | None, provider: str | None
) -> dict[str, Any]:
    """The provider and connection selector's options (shown when there are several) and the
    parameters a change of range keeps."""
    known = sorted(names.connections.items())
    return {
        "providers": [(p, PROVIDER_NAMES.get(p, p)) for p in sorted({of for _, of in known})],
        "connections": [(name, PROVIDER_NAMES.get(of, of)) for name, of in known],
        "provider": provider,
        "connection": connection,
        "keep": [(k, v) for k, v in (("provider", provider), ("connection", connection)) if v],
    }


def _project_limits(
    state: AppState, access: Access, now: int
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each project's hard spend limit, for the Projects table (admins and viewers)."""
    if not access.who.is_staff:
        return {}
    report = limits_report(state, access, now)
    return {
        (r["connection"], r["project_id"]): r
        for r in report["limits"]
        if r["kind"] == "spend_limit" and r["project_id"]
    }


def _pool_panels(state: AppState, access: Access, now: int, view: View) -> list[dict[str, Any]]:
    """Today's pools of each OpenAI organization the view shows (pools are OpenAI's alone,
    each organization's its own); before any connection is set up, the settings' pools."""
    openai = [c.name for c in state.connections if c.provider == "openai"]
    if not state.connections:
        return [tiers_report(state, access, now)]
    shown = [
        name
        for name in openai
        if view.connection in (None, name) and view.provider in (None, "openai")
    ]
    return [tiers_report(state, access, now, name) for name in shown]


def _tables(context: dict[str, Any], expanded: tuple[str, ...]) -> Markup:
    """The usage tables: each its first TABLE_ROWS rows (the most tokens) unless ``expanded``,
    with a link to the rest."""
    summary = context["summary"]
    others = [
        _other_source(r) for r in summary["by"]["source"] if r["source"] in OTHER_SOURCE_COUNTERS
    ]
    tables = {}
    for key, title in TABLES.items():
        if key == "connection" and not context["several_connections"]:
            continue
        if key == "team" and not context["has_teams"]:
            continue
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
    query += [(k, context[k]) for k in ("person", "model") if context[k] is not None]
    query += [(param, value) for _, _, param, value in context["filters"]]
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
    key: str | None = None
    project: str | None = None
    user: str | None = None
    connection: str | None = None
    provider: str | None = None
    team: str | None = None

    def where(self, state: AppState, names: Names) -> dict[str, list[str]]:
        """The usage filter of this view's drill-downs."""
        where: dict[str, list[str]] = {}
        where.update(connections_where(names, self.connection, self.provider) or {})
        if self.team is not None:
            where["api_key_id"] = reports.keys_of_team(names, self.team)
        if self.person:
            keys = reports.keys_of_person(state.store, names, self.lo, self.hi, self.person)
            if self.person == names.person(""):
                keys.append("")  # "(no key)": the costs no key carries
            if "api_key_id" in where:  # a person within a team
                keys = [k for k in keys if k in set(where["api_key_id"])]
            where["api_key_id"] = keys or ["-"]
        if self.key is not None:
            where["api_key_id"] = [k for k in where.get("api_key_id", [self.key]) if k == self.key]
        if self.model is not None:  # "": the usage and costs that name no model
            where["model"] = [self.model]
        if self.project is not None:
            where["project_id"] = [self.project]
        if self.user is not None:
            where["user_id"] = [self.user]
        return where


Figures = tuple[dict[str, Any], tuple[Markup, list[charts.Legend]], list[dict[str, Any]]]


def page_figures(
    state: AppState, version: Version, names: Names, scope: Scope, view: View
) -> Figures:
    """The summary, the chart and the reconciliation's findings of a view, computed once per
    version of the data."""
    provisional = provisional_from(state)

    def figures() -> Figures:
        where = view.where(state, names) or None
        with state.store.snapshot() as store:  # the three read the range's totals once
            summary = reports.summary(
                store,
                names,
                view.lo,
                view.hi,
                where=where,
                scope=scope,
                provisional_from=provisional,
                metrics=SHOWN,
            )
            chart = reports.usage_over_time(
                store, names, view.lo, view.hi, view.stack, where=scope.narrow(where)
            )
            findings = reports.reconciliation(store, view.lo, view.hi, scope=scope, per_day=False)[
                "findings"
            ]
        label = f"Tokens per {chart['bucket']}, by {view.stack}"
        return summary, charts.stacked_bars(chart, label=label), findings

    return state.results.get(("page", version, scope, view, provisional), figures)


WARMED = ("today", "yesterday", "7d", "30d", "mtd", "lastmonth")


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
    range: Annotated[Preset, Query()] = "30d",
    start: str | None = None,
    end: str | None = None,
) -> HTMLResponse:
    """Billed against estimated cost per model and per day (default: the last 30 UTC days,
    today's included: the dashboard's "Last 30 days")."""
    now = int(state.clock())
    if start and "range" not in request.query_params:
        range = "custom"
    picked = picked_range(range, now, start, end, fallback="30d")
    report = reconciliation_report(state, access, picked["start"], picked["end"])
    context = {
        "request": request,
        "version": __version__,
        "who": access.who,
        "report": report,
        **picked,
    }
    return templates.TemplateResponse(request, "reconciliation.html", context)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, who: CurrentUser) -> HTMLResponse:
    """Swagger UI from vendored files (no CDN), started by a static script (strict CSP)."""
    context = {"request": request, "who": who, "version": __version__}
    return templates.TemplateResponse(request, "docs.html", context)

"""Every aggregation the product shows, one function per question, all read from the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from usage_tracker.names import Names
from usage_tracker.pools import NOT_ELIGIBLE, POOLS, UNCLASSIFIED, PoolTable
from usage_tracker.prices import COMPLIMENTARY_TIER
from usage_tracker.scope import EVERYTHING, Scope
from usage_tracker.store import Store
from usage_tracker.store.folded import WEEK, period_start
from usage_tracker.store.schema import ESTIMATES, from_stored
from usage_tracker.upstream.contract import METRICS, SOURCES, align_down

from . import money
from .forecast import daily_billed as daily_billed
from .forecast import forecast as forecast
from .people import people as people
from .reconciliation import reconciliation as reconciliation

DAY, HOUR = 86400, 3600

GROUPINGS: dict[str, str] = {
    "connection": "connection",
    "person": "api_key_id",
    "api_key": "api_key_id",
    "user": "user_id",
    "project": "project_id",
    "model": "model",
    "source": "source",
    "service_tier": "service_tier",
    "batch": "batch",
    "day": "day",
    "hour": "hour",
}
"""Report groupings and the stored column each reads. ``person`` merges the keys that map to
the same display name."""


class ReportError(ValueError):
    """A report was asked for something it cannot answer (the message says which and why)."""

    def __init__(self, message: str, param: str | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        """400: the request cannot be answered; 404: what it names does not exist."""


def load_names(store: Store, mapping: dict[str, str] | None = None) -> Names:
    return Names(
        keys={k["id"]: k for k in store.api_keys()},
        users={u["id"]: u for u in store.users()},
        projects={p["id"]: p for p in store.projects()},
        mapping=mapping or {},
        owners=store.key_owners(),
        connections=store.connections(),
    )


def _label(names: Names, grouping: str, value: Any) -> Any:
    if grouping == "person":
        return names.person(value)
    if grouping in ("day", "hour"):
        return value
    return from_stored(GROUPINGS[grouping], value)


def _series(names: Names, stack: str, value: Any) -> str:
    """A chart series' label: a key by its name and the end of its id (names repeat: three
    keys may all be called "default")."""
    if stack == "api_key":
        return f"{names.key(value or '')} ({value[-4:]})" if value else names.key("")
    return str(_label(names, stack, value) or "(none)")


def _display(names: Names, grouping: str, value: Any) -> str | None:
    lookup = {
        "api_key": names.key,
        "user": names.user,
        "project": names.project,
    }.get(grouping)
    return lookup(value or "") if lookup else None


def usage_totals(
    store: Store,
    names: Names,
    start: int,
    end: int,
    group_by: Sequence[str] = (),
    *,
    sources: Sequence[str] | None = None,
    metrics: Sequence[str] = METRICS,
    where: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Usage in [start, end) grouped by any of :data:`GROUPINGS`, biggest total first.

    Each row has the group values (``None`` where upstream had none), a display ``name`` for
    each of api_key / user / project grouped, every metric and ``tokens`` (input + output:
    ``input_tokens`` already holds the cached ones)."""
    unknown = [g for g in group_by if g not in GROUPINGS]
    if unknown:
        raise ReportError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUPINGS)}",
            "group_by",
        )
    _check_range(start, end)
    columns = list(dict.fromkeys(GROUPINGS[g] for g in group_by))
    metrics = list(dict.fromkeys([*metrics, "input_tokens", "output_tokens"]))
    rows = store.usage_totals(start, end, columns, sources=sources, metrics=metrics, where=where)
    return _fold(names, rows, group_by, metrics)


def _check_range(start: int, end: int) -> None:
    if start % HOUR or end % HOUR or end <= start:
        raise ReportError("the range must be whole UTC hours with start before end")


def _fold(
    names: Names,
    rows: Iterable[dict[str, Any]],
    group_by: Sequence[str],
    metrics: Sequence[str],
    *,
    connection: bool = False,
) -> list[dict[str, Any]]:
    """Stored rows summed per report grouping (several keys may be one person); with
    ``connection``, each with the connection its rows came from (None when several)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(_label(names, g, row[GROUPINGS[g]]) for g in group_by)
        out = merged.get(key)
        if out is None:  # the first row of its key: its counters as they are
            out = merged[key] = dict(zip(group_by, key, strict=True))
            for g in group_by:
                if (display := _display(names, g, row[GROUPINGS[g]])) is not None:
                    out[f"{g}_name"] = display
            for m in metrics:
                out[m] = row[m]
            if connection:
                out["connection"] = row.get("connection")
        else:
            for m in metrics:
                out[m] += row[m]
            if connection and out["connection"] != row.get("connection"):
                out["connection"] = None
    result = list(merged.values())
    for row in result:
        row["tokens"] = row["input_tokens"] + row["output_tokens"]
    if group_by and group_by[0] in ("day", "hour"):
        return sorted(result, key=lambda r: r[group_by[0]])
    # Ties (sources without tokens…) in the order of their labels, whatever the rows' order.
    return sorted(
        result,
        key=lambda r: (
            -r["tokens"],
            -r.get("num_model_requests", 0),
            [str(r[g]) for g in group_by],
        ),
    )


@dataclass
class PoolStatus:
    pool: str
    limit: int
    used: int = 0
    reported_complimentary: int = 0
    """Tokens OpenAI reported under the ``incentivized-tier`` service tier."""
    burn_per_hour: float = 0.0
    """Average tokens per hour since 00:00 UTC."""
    exhausted_at: int | None = None
    """When the pool runs out at today's average pace; None if not before the day ends."""
    models: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.limit if self.limit else 0.0


@dataclass
class PoolReport:
    day_start: int
    now: int
    usage_tier: str
    table_as_of: str
    pools: dict[str, PoolStatus]
    not_eligible: dict[str, int]
    unclassified: dict[str, int]
    reported_free: dict[str, int] = field(default_factory=dict)
    """Per model, every token OpenAI reported under ``incentivized-tier`` in a sharing project,
    whatever the pool table says: what OpenAI itself counts as free."""
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    """Models OpenAI reported free tokens for that the table says are not eligible (or traffic
    of a project outside SHARING_PROJECTS): the table, or the setting, needs a look."""
    free_group_unknown: dict[str, int] = field(default_factory=dict)
    """Models no list names that OpenAI counted free today (tokens it marked
    ``incentivized-tier``): counted free by OpenAI, group unknown, in no pool until TIERS_FILE
    places them."""


EVERYONE_ELSE = "everyone else"


def pool_usage(
    store: Store,
    names: Names,
    table: PoolTable,
    now: int,
    *,
    usage_tier: str = "1-2",
    sharing_projects: Iterable[str] = (),
    scope: Scope = EVERYTHING,
    rows: Sequence[Mapping[str, Any]] | None = None,
    connection: str | None = None,
) -> PoolReport:
    """Today's (UTC) completions usage of one OpenAI organization (``connection``; every
    stored row when None) against its complimentary pools.

    Only traffic of ``sharing_projects`` counts (all projects when empty). Unknown models are
    listed as unclassified and counted in no pool. The pools' figures are the organization's
    whatever the ``scope``; everything per model (and people outside the scope, folded into
    one "everyone else") is of the ``scope``'s keys only: a model only one colleague uses
    would otherwise show that colleague's usage."""
    day_start = align_down(now, "1d")
    sharing = set(sharing_projects)
    if rows is None:
        rows = pool_rows(store, now, connection)
    pools = {p: PoolStatus(p, table.limit(usage_tier, p)) for p in POOLS}
    report = PoolReport(day_start, now, usage_tier, table.as_of, pools, {}, {})
    disagree: dict[tuple[str, str], int] = {}
    for row in rows:
        outside = bool(sharing) and row["project_id"] not in sharing
        mine = scope.allows(row["api_key_id"])
        pool = table.classify(row["model"])
        _tally(report, disagree, row, pool, names, mine=mine, outside=outside)
    elapsed = max(now - day_start, 60)  # a minute at least: no huge rate just after midnight
    for status in pools.values():
        status.burn_per_hour = status.used * HOUR / elapsed
        if status.used >= status.limit:
            status.exhausted_at = now if status.used else None
        elif status.used:
            at = now + int((status.limit - status.used) * elapsed / status.used)
            status.exhausted_at = at if at < day_start + DAY else None
    report.disagreements = [
        {"model": model, "table": said, "reported_free": tokens}
        for (model, said), tokens in sorted(disagree.items(), key=lambda kv: -kv[1])
    ]
    return report


def _add(into: dict[Any, int], key: Any, tokens: int) -> None:
    into[key] = into.get(key, 0) + tokens


def _tally(
    report: PoolReport,
    disagree: dict[tuple[str, str], int],
    row: Mapping[str, Any],
    pool: str,
    names: Names,
    *,
    mine: bool,
    outside: bool,
) -> None:
    """One row of today's usage into ``report``: the pools count every row; what is told per
    model only the ``mine`` ones (the scope's keys)."""
    tokens = row["input_tokens"] + row["output_tokens"]
    model = row["model"]
    free = row["service_tier"] == COMPLIMENTARY_TIER
    if free and mine:
        if outside:
            _add(disagree, (model, "project not in SHARING_PROJECTS"), tokens)
        else:
            _add(report.reported_free, model, tokens)
            if pool == NOT_ELIGIBLE:
                _add(disagree, (model, pool), tokens)
            elif pool == UNCLASSIFIED:
                _add(report.free_group_unknown, model, tokens)
    if pool in (UNCLASSIFIED, NOT_ELIGIBLE) or outside:
        if mine:
            _add(
                report.unclassified if pool == UNCLASSIFIED else report.not_eligible, model, tokens
            )
        return
    status = report.pools[pool]
    status.used += tokens
    if free:
        status.reported_complimentary += tokens
    if mine:
        _add(status.models, model, tokens)
    _add(status.people, names.person(row["api_key_id"]) if mine else EVERYONE_ELSE, tokens)


def pool_rows(store: Store, now: int, connection: str | None = None) -> list[dict[str, Any]]:
    """Today's (UTC) completions tokens per model, project, key and service tier so far (of
    ``connection`` alone when given: each OpenAI organization has pools of its own)."""
    day_start = align_down(now, "1d")
    return store.usage_totals(
        day_start,
        align_down(now, "1h") + HOUR,
        ["model", "project_id", "api_key_id", "service_tier"],
        sources=["completions"],
        metrics=["input_tokens", "output_tokens"],
        where=None if connection is None else {"connection": [connection]},
    )


def cost_totals(
    store: Store,
    names: Names,
    start: int,
    end: int,
    group_by: Sequence[str] = (),
    *,
    scope: Scope = EVERYTHING,
) -> list[dict[str, Any]]:
    """Billed cost (the Costs API, whole UTC days) grouped by project_id, line_item, api_key_id
    or day, biggest first; only the cost of the ``scope``'s keys."""
    allowed = ("connection", "project_id", "line_item", "api_key_id", "day")
    unknown = [g for g in group_by if g not in allowed]
    if unknown:
        raise ReportError(f"cannot group costs by {', '.join(unknown)}")
    rows = money.scoped_costs(store, start, end, group_by, scope)
    for row in rows:
        if "api_key_id" in row:
            row["name"] = names.person(row["api_key_id"])
        elif "project_id" in row:
            row["name"] = names.project(row["project_id"])
    return sorted(rows, key=lambda r: -r["amount"])


SUMMARY_GROUPS = ("person", "api_key", "user", "project", "model", "source", "connection")
FOLDED_AS = {"person": "api_key", "api_key": "api_key", "user": "user", "project": "project"}
"""Which folded grouping each summary grouping is read from (model and source: their own)."""
ESTIMATED = (*METRICS, *ESTIMATES)
OF_ONE_CONNECTION = ("api_key", "project", "user")
"""Summary groupings whose rows name the connection they come from (a provider's ids)."""


def summary(
    store: Store,
    names: Names,
    start: int,
    end: int,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    scope: Scope = EVERYTHING,
    provisional_from: int | None = None,
) -> dict[str, Any]:
    """Totals over [start, end): per grouping in :data:`SUMMARY_GROUPS`, each row with its
    billed and estimated cost (see :mod:`.money`), of the ``scope``'s keys only. Pages and
    ``/api/summary`` both render this. ``where`` narrows the usage (and the billed cost, which
    the Costs API gives per project, key and line item, by whole UTC days: a filter by key or
    model narrows it too, through the model each line item names). Billed days from
    ``provisional_from`` on may still change (costs settle late). Estimates are those stored
    with each row: at the list prices of the row's own UTC day."""
    _check_range(start, end)
    narrowed = scope.narrow(where)
    billed_usd: Decimal | None
    if narrowed is None:
        # Everything, unfiltered: the folded rollups, a few hundred rows per grouping.
        folded = store.folded_totals(start, end, ESTIMATED)
        rows_of = {g: folded[FOLDED_AS.get(g, g)] for g in SUMMARY_GROUPS}
        every = folded["source"]  # each usage row is of exactly one source
        costs = store.folded_costs(start, end)
        billed = money.billed_by_folded(names, costs)
        billed_usd = sum((r["amount"] for r in costs["api_key"]), Decimal(0))
        per_project = {r["project_id"]: r["amount"] for r in costs["project"]}
    else:
        columns = list(dict.fromkeys(GROUPINGS[g] for g in SUMMARY_GROUPS))
        every = store.usage_totals(start, end, columns, where=narrowed, metrics=ESTIMATED)
        rows_of = dict.fromkeys(SUMMARY_GROUPS, every)
        every_cost = cost_totals(
            store,
            names,
            start,
            end,
            ["connection", "api_key_id", "project_id", "line_item"],
            scope=scope,
        )
        cost_rows = money.narrowed(every_cost, where) if money.billed_known(where) else []
        billed = money.billed_by(names, cost_rows) if money.billed_known(where) else {}
        billed_usd = sum((r["amount"] for r in cost_rows), Decimal(0))
        if not money.billed_known(where):
            billed_usd = None  # the Costs API has no user: a user's bill is not known
        per_project = {}
        for cost in cost_rows:
            project = cost["project_id"]
            per_project[project] = per_project.get(project, Decimal(0)) + cost["amount"]
    totals = _fold(names, every, (), ESTIMATED)
    by = {
        g: money.with_money(
            g,
            _fold(names, rows_of[g], [g], ESTIMATED, connection=g in OF_ONE_CONNECTION),
            billed,
            METRICS,
        )
        for g in SUMMARY_GROUPS
    }
    by["provider"] = _per_provider(names, by["connection"])
    for row in by["api_key"]:  # a key billed without usage: the connection its names are of
        row.setdefault("connection", names.connection(row["api_key"] or ""))
        row["provider"] = names.provider(row["connection"])
    total = totals[0] if totals else {**_zero_totals(), "estimated_usd": Decimal(0)}
    unpriced = sorted({r["model"] for r in rows_of["model"] if r["unpriced_tokens"]})
    by_project = [
        {"project_id": p, "amount": amount, "name": names.project(p)}
        for p, amount in sorted(per_project.items(), key=lambda kv: -kv[1])
        if amount
    ]
    return {
        "start_time": start,
        "end_time": end,
        "totals": {k: v for k, v in total.items() if k not in ESTIMATES},
        "by": by,
        "billed_usd": billed_usd,
        "billed_provisional_from": (
            max(align_down(start, "1d"), provisional_from)
            if provisional_from is not None and provisional_from < end
            else None
        ),
        "billed_by_project": by_project,
        "estimated_usd": total["estimated_usd"].quantize(Decimal("0.01")),
        "unpriced_models": unpriced,
        "prices_as_of": store.prices.as_of,
    }


def _per_provider(names: Names, connections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary's rows per connection summed per provider (counters, billed and estimated
    cost: None only where every connection's is)."""
    out: dict[str, dict[str, Any]] = {}
    for row in connections:
        provider = names.provider(row["connection"]) or "openai"
        into = out.get(provider)
        if into is None:
            out[provider] = {**row, "provider": provider}
            del out[provider]["connection"]
            continue
        for name, value in row.items():
            if name == "connection" or value is None:
                continue
            into[name] = value if into.get(name) is None else into[name] + value
    return sorted(out.values(), key=lambda r: (-r["tokens"], r["provider"]))


def _zero_totals() -> dict[str, Any]:
    return {**dict.fromkeys(METRICS, 0), "tokens": 0}


def keys_of_person(store: Store, names: Names, start: int, end: int, person: str) -> list[str]:
    """The API key ids with usage in [start, end) that display as ``person``."""
    rows = store.folded_totals(start, end, ["num_model_requests"], ["api_key"])["api_key"]
    return [r["api_key_id"] for r in rows if names.person(r["api_key_id"]) == person]


def usage_over_time(
    store: Store,
    names: Names,
    start: int,
    end: int,
    stack: str,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    series: int = 8,
) -> dict[str, Any]:
    """Tokens per hour (ranges up to two days), per day (up to CHART_DAYS) or per week from
    Monday, stacked by ``stack`` (person or model); the biggest ``series`` are kept and the
    rest summed as "other"."""
    bucket = chart_bucket(start, end)
    step = STEPS[bucket]
    first = period_start(start, WEEK) if bucket == "week" else start - start % step
    labels = list(range(first, end, step))
    if bucket != "hour" and where is None:
        data = _days_from_folded(store, names, start, end, stack, series=series, per=step)
    else:
        by = "day" if bucket == "week" else bucket  # days, then added into their weeks
        data = _stacked(
            names,
            usage_totals(store, names, start, end, [by, stack], where=where, metrics=TOKENS),
            by,
            stack,
            series,
        )
    points = {s: [0] * len(labels) for s in data}
    for label, per_time in data.items():
        for at, tokens in per_time.items():
            points[label][(at - first) // step] += tokens
    if "other" in points and not any(points["other"]):
        del points["other"]
    return {"bucket": bucket, "labels": labels, "series": points}


TOKENS = ("input_tokens", "output_tokens")
"""What a chart's bar counts (``tokens``): input (cached included) and output."""
CHART_DAYS = 92
"""The longest range whose chart has a bar per day (about three months); weeks beyond."""
STEPS = {"hour": HOUR, "day": DAY, "week": WEEK}


def chart_bucket(start: int, end: int) -> str:
    """The chart's bars over [start, end): hours up to two days, days up to CHART_DAYS,
    weeks (from Monday, UTC) beyond."""
    if end - start <= 2 * DAY:
        return "hour"
    return "day" if end - start <= CHART_DAYS * DAY else "week"


def _top(tokens: Mapping[str, int], series: int) -> list[str]:
    return [s for s, _ in sorted(tokens.items(), key=lambda kv: -kv[1])[:series]]


def _stacked(
    names: Names, rows: Iterable[dict[str, Any]], bucket: str, stack: str, series: int
) -> dict[str, dict[int, int]]:
    """Folded (time, stack) rows as tokens per time of the biggest series and "other"."""
    rows = list(rows)
    by_series: dict[str, int] = {}
    labelled = stack == "api_key"  # rows hold the key's id: its series label is made here
    for row in rows:
        label = _series(names, stack, row[stack]) if labelled else str(row[stack] or "(none)")
        by_series[label] = by_series.get(label, 0) + row["tokens"]
    top = _top(by_series, series)
    data: dict[str, dict[int, int]] = {s: {} for s in [*top, "other"]}
    for row in rows:
        label = _series(names, stack, row[stack]) if labelled else str(row[stack] or "(none)")
        into = data[label if label in top else "other"]
        into[row[bucket]] = into.get(row[bucket], 0) + row["tokens"]
    return data


def _days_from_folded(
    store: Store, names: Names, start: int, end: int, stack: str, *, series: int, per: int
) -> dict[str, dict[int, int]]:
    """Everyone's tokens per day (or week: ``per``): the biggest series over the range from
    the folded totals, their days from the folded days, and "other" as each day's total less
    theirs."""
    grouping = "api_key" if stack in ("person", "api_key") else "model"
    column = GROUPINGS[stack]
    label_of = {}
    by_series: dict[str, int] = {}
    for row in store.folded_totals(start, end, TOKENS, [grouping])[grouping]:
        label = label_of[row[column]] = _series(names, stack, row[column])
        by_series[label] = by_series.get(label, 0) + row["input_tokens"] + row["output_tokens"]
    top = _top(by_series, series)
    shown = {v: label for v, label in label_of.items() if label in top}
    data: dict[str, dict[int, int]] = {s: {} for s in [*top, "other"]}
    other = data["other"]
    # Every source named: no read of the range's values first (folded_days's default).
    for row in store.folded_days(start, end, "source", TOKENS, values=list(SOURCES), per=per):
        other[row["day"]] = other.get(row["day"], 0) + row["input_tokens"] + row["output_tokens"]
    # The top series' values summed per series by the database.
    for row in store.folded_days(start, end, grouping, TOKENS, values=shown, per=per):
        used = row["input_tokens"] + row["output_tokens"]
        into = data[row[column]]
        into[row["day"]] = into.get(row["day"], 0) + used
        other[row["day"]] -= used
    return data

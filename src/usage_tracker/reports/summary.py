"""Totals over a range: usage and billed cost, grouped by any dimension, and the summary that
puts them side by side per key, person, user, project, model, source and connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from usage_tracker.people.names import NO_TEAM, Names
from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.providers.openai.contract import align_down
from usage_tracker.providers.records import METRICS
from usage_tracker.reports import money
from usage_tracker.reports.common import GROUPINGS, ReportError, check_range, fold
from usage_tracker.store import Store
from usage_tracker.store.folded import Sums
from usage_tracker.store.schema import ESTIMATES


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
    check_range(start, end)
    columns = list(dict.fromkeys(GROUPINGS[g] for g in group_by))
    metrics = list(dict.fromkeys([*metrics, "input_tokens", "output_tokens"]))
    rows = store.usage_totals(start, end, columns, sources=sources, metrics=metrics, where=where)
    return fold(names, rows, group_by, metrics)


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


SUMMARY_GROUPS = (
    "person",
    "team",
    "api_key",
    "user",
    "project",
    "model",
    "source",
    "connection",
)
FOLDED_AS = {
    "person": "api_key",
    "team": "api_key",
    "api_key": "api_key",
    "user": "user",
    "project": "project",
}
"""Which folded grouping each summary grouping is read from (model and source: their own)."""
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
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """Totals over [start, end): per grouping in :data:`SUMMARY_GROUPS`, each row with its
    billed and estimated cost (see :mod:`.money`), of the ``scope``'s keys only. Pages and
    ``/api/summary`` both render this. ``where`` narrows the usage (and the billed cost, which
    the Costs API gives per project, key and line item, by whole UTC days: a filter by key or
    model narrows it too, through the model each line item names). Billed days from
    ``provisional_from`` on may still change (costs settle late). Estimates are those stored
    with each row: at the list prices of the row's own UTC day. ``metrics`` are the counters
    summed (input and output tokens always): every one unless a caller shows fewer."""
    check_range(start, end)
    narrowed = scope.narrow(where)
    counters = tuple(dict.fromkeys(["input_tokens", "output_tokens", *metrics]))
    counted = (*counters, *ESTIMATES)
    billed_usd: Decimal | None
    every: Sums | list[dict[str, Any]]
    if narrowed is None:
        # Everything, unfiltered: the folded rollups, a few hundred rows per grouping.
        folded = store.folded_sums(start, end, counted)
        rows_of: Mapping[str, Sums | list[dict[str, Any]]]
        rows_of = {g: folded[FOLDED_AS.get(g, g)] for g in SUMMARY_GROUPS}
        every = folded["source"]  # each usage row is of exactly one source
        costs = store.folded_costs(start, end)
        billed = money.billed_by_folded(names, costs)
        billed_usd = sum((r["amount"] for r in costs["api_key"]), Decimal(0))
        per_project = {r["project_id"]: r["amount"] for r in costs["project"]}
    else:
        columns = list(dict.fromkeys(GROUPINGS[g] for g in SUMMARY_GROUPS))
        every = store.usage_totals(start, end, columns, where=narrowed, metrics=counted)
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
    totals = fold(names, every, (), counted)
    folds = {
        g: fold(names, rows_of[g], [g], counted, connection=g in OF_ONE_CONNECTION)
        for g in SUMMARY_GROUPS
    }
    unpriced = sorted({r["model"] or "" for r in folds["model"] if r["unpriced_tokens"]})
    by = {g: money.with_money(g, folds[g], billed, counters) for g in SUMMARY_GROUPS}
    by["provider"] = _per_provider(names, by["connection"])
    for row in by["team"]:
        row["cost_centre"] = names.cost_centre(row["team"])
    for row in by["api_key"]:  # a key billed without usage: the connection its names are of
        row.setdefault("connection", names.connection(row["api_key"] or ""))
        row["provider"] = names.provider(row["connection"])
    nothing: dict[str, Any] = {**dict.fromkeys(counters, 0), "tokens": 0}
    total = totals[0] if totals else {**nothing, "estimated_usd": Decimal(0)}
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


def keys_of_team(names: Names, team: str) -> list[str]:
    """Every known key whose usage and cost count for ``team`` (for :data:`NO_TEAM`, the keys
    of none, and ``""``: the costs no key carries). A team that no key is of is a 404 naming
    the teams there are."""
    keys = sorted(k for k in names.keys if names.team(k) == team)
    if team == NO_TEAM:
        return ["", *keys]
    if not keys:
        known = sorted({names.team(k) for k in names.keys} - {NO_TEAM})
        raise ReportError(
            f"no key is of the team {team!r}; the teams are: {', '.join(known) or 'none'} "
            "(teams come from the mapping file)",
            "team",
            status=404,
        )
    return keys


def keys_of_person(store: Store, names: Names, start: int, end: int, person: str) -> list[str]:
    """The API key ids with usage in [start, end) that display as ``person``."""
    rows = store.folded_totals(start, end, ["num_model_requests"], ["api_key"])["api_key"]
    return [r["api_key_id"] for r in rows if names.person(r["api_key_id"]) == person]

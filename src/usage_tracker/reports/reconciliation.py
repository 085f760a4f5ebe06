"""Billed against estimated cost, per UTC day and model, to find where they disagree.

Billed cost comes from the Costs API's line items (``"<model>, input"`` names the model; items
that name none, such as storage, are kept under their own line item). Estimated cost is the
usage at list prices (stored with each row, at the prices of its day). A model-day whose
estimate is off by more than ``threshold`` of what was billed (and by more than a cent), or
that used tokens but has no list price, is a finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.store import Store
from usage_tracker.store.schema import ESTIMATES

from .money import CENT, model_of_line_item, scoped_costs

DAY = 86400
THRESHOLD = Decimal("0.05")
"""Five percent: list-price estimates and the bill differ by rounding and discounts below it."""

Key = tuple[int, str]


def reconciliation(
    store: Store,
    start: int,
    end: int,
    *,
    scope: Scope = EVERYTHING,
    threshold: Decimal = THRESHOLD,
    per_day: bool = True,
    only: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Rows per (day, model or line item) and per model over [start, end) in whole UTC days,
    each with ``billed``, ``estimated`` (None: no list price, or nothing to estimate from),
    ``difference`` and ``finding``. Without ``per_day``, the models over the whole range only
    (what the dashboard's banner needs: no rows per day). ``only``: the usage and cost of some
    connections (``{"connection": [...]}``)."""
    start, end = start - start % DAY, -(-end // DAY) * DAY
    metrics = ("input_tokens", "output_tokens", *ESTIMATES)
    where = {**(scope.where() or {}), **(only or {})} or None
    if only:  # read as they are, not folded: the rollups are across connections
        group = ["day", "line_item"] if per_day else ["line_item"]
        costs = scoped_costs(store, start, end, group, scope, where=only)
        models = [*group[:-1], "model"]
        usage = store.usage_totals(start, end, models, where=where, metrics=metrics)
    elif not per_day:
        costs = (
            store.folded_costs(start, end)["line_item"]
            if scope.everything
            else scoped_costs(store, start, end, ["line_item"], scope)
        )
        usage = (
            store.folded_totals(start, end, metrics, ["model"])["model"]
            if scope.everything
            else store.usage_totals(start, end, ["model"], where=where, metrics=metrics)
        )
    elif scope.everything:
        costs = store.folded_cost_days(start, end, "line_item")
        usage = store.folded_days(start, end, "model", metrics)
    else:
        costs = scoped_costs(store, start, end, ["day", "line_item"], scope)
        usage = store.usage_totals(start, end, ["day", "model"], where=where, metrics=metrics)
    billed: dict[Key, Decimal] = {}
    for row in costs:
        model = model_of_line_item(row["line_item"]) or row["line_item"]
        key = (row.get("day", start), model)
        billed[key] = billed.get(key, Decimal(0)) + row["amount"]
    estimated: dict[Key, Decimal] = {}
    unpriced: set[Key] = set()
    for row in usage:
        if not row["model"] or not row["input_tokens"] + row["output_tokens"]:
            continue
        key = (row.get("day", start), row["model"])
        estimated[key] = estimated.get(key, Decimal(0)) + row["estimated_usd"]
        if row["unpriced_tokens"]:
            unpriced.add(key)
    # A line item without tokens behind it (storage, tool calls, images, audio) is not
    # estimated: None, and no finding; a model with tokens but no list price is "unpriced".
    days = [
        _row(k, billed.get(k, Decimal(0)), None if k in unpriced else estimated.get(k), threshold)
        for k in sorted(set(billed) | set(estimated))
    ]
    for row in days:
        if (row["day"], row["model"]) in unpriced:
            row["finding"] = "unpriced"
    days = [r for r in days if r["billed"] or r["estimated"]]
    by_model = _per_model(days, threshold)
    billed_total = sum((r["billed"] for r in by_model), Decimal(0))
    estimated_total = sum(
        (r["estimated"] for r in by_model if r["estimated"] is not None), Decimal(0)
    )
    return {
        "start_time": start,
        "end_time": end,
        "threshold_percent": int(threshold * 100),
        "totals": {
            "billed": billed_total,
            "estimated": estimated_total,
            "difference": billed_total - estimated_total,
            "unestimated_billed": sum(
                (r["billed"] for r in by_model if r["estimated"] is None), Decimal(0)
            ),
        },
        "days": days if per_day else [],
        "by_model": by_model,
        "findings": [r for r in by_model if r["finding"]],
    }


def _row(
    key: Key, billed: Decimal, estimated: Decimal | None, threshold: Decimal
) -> dict[str, Any]:
    day, model = key
    return {"day": day, "model": model, **_compare(billed, estimated, threshold)}


def _compare(billed: Decimal, estimated: Decimal | None, threshold: Decimal) -> dict[str, Any]:
    if estimated is None:
        return {"billed": billed, "estimated": None, "difference": None, "finding": None}
    estimated = estimated.quantize(CENT)
    difference = billed - estimated
    off = abs(difference) > CENT and abs(difference) > threshold * max(billed, estimated)
    finding = None
    if off:
        finding = "billed more than estimated" if difference > 0 else "estimated more than billed"
    return {"billed": billed, "estimated": estimated, "difference": difference, "finding": finding}


def _per_model(days: list[dict[str, Any]], threshold: Decimal) -> list[dict[str, Any]]:
    totals: dict[str, tuple[Decimal, Decimal | None]] = {}
    for row in days:
        billed, estimated = totals.get(row["model"], (Decimal(0), Decimal(0)))
        more = row["estimated"]
        totals[row["model"]] = (
            billed + row["billed"],
            None if estimated is None or more is None else estimated + more,
        )
    unpriced = {r["model"] for r in days if r["finding"] == "unpriced"}
    rows = [
        {"model": model, **_compare(billed, None if model in unpriced else estimated, threshold)}
        for model, (billed, estimated) in totals.items()
    ]
    for row in rows:
        if row["model"] in unpriced:
            row["finding"] = "unpriced"
    return sorted(rows, key=lambda r: -r["billed"])

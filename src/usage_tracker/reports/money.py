"""Money per row: billed cost (the Costs API) and estimated cost (list prices) for each row of
a summary grouping, so that people, keys, projects and models each carry what they cost.

Billed cost is grouped by key, project and line item upstream, so it is known per person (the
sum of their keys; costs without a key are the "(no key)" row, so people add up to the bill to
the cent), per key, per project and per model (from the model named in each line item); it is
not known per user or per source (``None``). Estimated cost is known where tokens are: ``None``
for a row without tokens or whose tokens all lack a list price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.people.scope import Scope
from usage_tracker.store import Store
from usage_tracker.store.schema import from_stored

CENT = Decimal("0.01")
DAY = 86400


def scoped_costs(
    store: Store,
    start: int,
    end: int,
    group_by: Sequence[str],
    scope: Scope,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Billed amounts per ``group_by`` over whole UTC days, of the ``scope``'s keys only (and
    the rows ``where`` allows: a connection's): a member's costs are read per key and folded
    back; everyone's are read as they are."""
    if scope.everything:
        return store.cost_totals(start - start % DAY, end, group_by, where=where)
    by_key = list(dict.fromkeys([*group_by, "api_key_id"]))
    folded: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in store.cost_totals(start - start % DAY, end, by_key, where=where):
        if not scope.allows(row["api_key_id"]):
            continue
        key = tuple(row[g] for g in group_by)
        out = folded.setdefault(key, {**{g: row[g] for g in group_by}, "amount": Decimal(0)})
        out["amount"] += row["amount"]
    return list(folded.values())


def model_of_line_item(line_item: str) -> str:
    """The model a Costs API line item bills, as the Usage API names it:
    ``"gpt-4o-2024-08-06, cached input"`` → ``"gpt-4o-2024-08-06"``; a product prefix goes
    (``"realtime api | gpt-realtime-1.5, audio, input"``, ``"evals | gpt-4.1, input"``), and a
    fine-tuned model's ``ft-`` becomes the ``ft:`` of its usage. A line item that names no model
    (``"vector store storage"``) → ``""``."""
    _product, _bar, rest = line_item.rpartition(" | ")
    model, sep, _kind = rest.partition(", ")
    if not sep:
        return ""
    return "ft:" + model.removeprefix("ft-") if model.startswith("ft-") else model


def billed_labels(names: Names) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    """How a cost row (api_key_id, project_id, line_item) is labelled in each grouping, the
    same way the usage rows are labelled."""
    return {
        "connection": lambda r: r["connection"],
        "person": lambda r: names.person(r["api_key_id"]),
        "team": lambda r: names.team(r["api_key_id"]),
        "api_key": lambda r: from_stored("api_key_id", r["api_key_id"]),
        "project": lambda r: from_stored("project_id", r["project_id"]),
        "model": lambda r: from_stored("model", model_of_line_item(r["line_item"])),
    }


def billed_by(
    names: Names, cost_rows: Iterable[Mapping[str, Any]]
) -> dict[str, dict[Any, Decimal]]:
    """Billed USD per label, for each grouping that billed cost is known in."""
    labels = billed_labels(names)
    out: dict[str, dict[Any, Decimal]] = {g: {} for g in labels}
    for row in cost_rows:
        for grouping, label_of in labels.items():
            label = label_of(row)
            out[grouping][label] = out[grouping].get(label, Decimal(0)) + row["amount"]
    return out


FOLDED_FROM = {
    "connection": "connection",
    "person": "api_key",
    "team": "api_key",
    "api_key": "api_key",
    "project": "project",
    "model": "line_item",
}
"""Which folded billed cost each grouping is labelled from (each row has that one column)."""


def billed_by_folded(
    names: Names, folded: Mapping[str, Iterable[Mapping[str, Any]]]
) -> dict[str, dict[Any, Decimal]]:
    """:func:`billed_by` from the folded billed cost (per key, per project, per line item)."""
    labels = billed_labels(names)
    out: dict[str, dict[Any, Decimal]] = {g: {} for g in labels}
    for grouping, label_of in labels.items():
        into = out[grouping]
        for row in folded[FOLDED_FROM[grouping]]:
            label = label_of(row)
            into[label] = into.get(label, Decimal(0)) + row["amount"]
    return out


def narrowed(
    cost_rows: Iterable[Mapping[str, Any]], where: Mapping[str, Sequence[str]] | None
) -> list[Mapping[str, Any]]:
    """The cost rows a usage filter (by connection, key, project and/or model) also applies
    to. The Costs API knows no user: see :func:`billed_per_user`."""
    keys = set(where["api_key_id"]) if where and "api_key_id" in where else None
    projects = set(where["project_id"]) if where and "project_id" in where else None
    models = set(where["model"]) if where and "model" in where else None
    connections = set(where["connection"]) if where and "connection" in where else None
    return [
        r
        for r in cost_rows
        if (connections is None or r["connection"] in connections)
        and (keys is None or r["api_key_id"] in keys)
        and (projects is None or r["project_id"] in projects)
        and (models is None or (model_of_line_item(r["line_item"]) or "") in models)
    ]


def shown_estimate(estimate: Decimal) -> Decimal:
    """An estimate to the cent; one that would round to nothing though it is not zero keeps
    its digits (to a millionth of a dollar), so that it reads "<$0.01", not "$0.00"."""
    cents = estimate.quantize(CENT)
    return cents if cents or not estimate else estimate.quantize(Decimal("0.000001"))


def billed_known(where: Mapping[str, Sequence[str]] | None) -> bool:
    """Whether the bill can be narrowed like the usage: not by user (costs have no user)."""
    return not (where and "user_id" in where)


def with_money(
    grouping: str,
    rows: list[dict[str, Any]],
    billed: Mapping[str, Mapping[Any, Decimal]],
    metrics: Iterable[str],
) -> list[dict[str, Any]]:
    """Each folded row of ``grouping`` with ``billed_cost`` and ``estimated_cost`` (Decimal or
    None), plus a row for every label that was billed but used no tokens (the "(no key)" costs,
    storage)."""
    known = billed.get(grouping)
    seen = set()
    for row in rows:
        seen.add(row[grouping])
        row["billed_cost"] = None if known is None else known.get(row[grouping], Decimal(0))
        # No tokens (audio, images, storage, tool calls): nothing to estimate from, so None;
        # tokens all without a list price: None as well, never a silent $0.
        unpriced, estimate = row.pop("unpriced_tokens"), row.pop("estimated_usd")
        estimable = row["tokens"] and unpriced < row["tokens"]
        row["estimated_cost"] = shown_estimate(estimate) if estimable else None
    zero = dict.fromkeys(metrics, 0)
    for label, amount in (known or {}).items():
        if label not in seen and amount:
            billed_only = {**zero, grouping: label, "tokens": 0}
            rows.append({**billed_only, "billed_cost": amount, "estimated_cost": None})
    return rows

"""The limits each provider reports (spend limits, spend alerts, rate limits), each beside what
its subject has spent this UTC month: "$412 of its $500 hard limit this month (82 %)"."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.reports.forecast import month_bounds
from usage_tracker.reports.summary import cost_totals
from usage_tracker.store import Store

THRESHOLDS = (80, 100)
"""The default percentages of a hard limit the ``limit`` alert tells of."""


def limits(store: Store, names: Names, now: int) -> dict[str, Any]:
    """Every stored limit, newest read first per connection, with the month's billed cost of
    its subject (the organization of its connection, or the project) and the share of the limit
    it is; the UTC month it counts."""
    month_start, month_end = month_bounds(now)
    spent: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    organization: dict[str, Decimal] = defaultdict(Decimal)
    for row in cost_totals(store, names, month_start, month_end, ("connection", "project_id")):
        spent[row["connection"], row["project_id"]] += row["amount"]
        organization[row["connection"]] += row["amount"]
    rows = []
    for r in store.limits():
        project = r["project_id"] or None
        used = organization[r["connection"]] if project is None else spent[r["connection"], project]
        amount = r["amount_usd"]
        rows.append(
            {
                "connection": r["connection"],
                "provider": names.connections.get(r["connection"]),
                "kind": r["kind"],
                "project_id": project,
                "subject": names.key(r["ident"])
                if r["kind"] == "key_status"
                else "organization"
                if project is None
                else names.project(project),
                "ident": r["ident"],
                "amount_usd": amount,
                "interval": r["interval"],
                "enforcing": r["enforcing"],
                "model": r["model"],
                "figures": json.loads(r["figures"]) if r["figures"] else None,
                "used_usd": used if amount is not None else None,
                "percent": (float(round(used * 100 / amount, 1)) if amount else None),
                "read_at": r["read_at"],
            }
        )
    order = {"spend_limit": 0, "spend_alert": 1, "rate_limit": 2, "key_status": 3}
    rows.sort(key=lambda r: (r["connection"], r["project_id"] or "", order[r["kind"]], r["ident"]))
    return {"month_start": month_start, "month_end": month_end, "limits": rows}


def hard_limits(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The hard spend limits of a :func:`limits` report."""
    return [r for r in report["limits"] if r["kind"] == "spend_limit"]

"""Month to date and the projected month-end bill, for the organization, each project and each
person.

Method (said in the answer): the billed cost of the month's complete UTC days, plus the average
daily bill of the last ``run_rate_days`` complete days times the days left in the month, today
included (today's cost is still coming in, so its partial figure is shown but not projected
from).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.store import Store

from .money import CENT

DAY = 86400
RUN_RATE_DAYS = 7


def month_bounds(now: int) -> tuple[int, int]:
    """[first second of this UTC month, first second of the next)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    first = dt.datetime(today.year, today.month, 1, tzinfo=dt.UTC)
    days = calendar.monthrange(today.year, today.month)[1]
    return int(first.timestamp()), int(first.timestamp()) + days * DAY


def forecast(
    store: Store,
    names: Names,
    now: int,
    *,
    scope: Scope = EVERYTHING,
    run_rate_days: int = RUN_RATE_DAYS,
    only: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``only``: the billed cost of some connections (``{"connection": [...]}``)."""
    month_start, month_end = month_bounds(now)
    today = now - now % DAY
    rate_from = today - run_rate_days * DAY
    first = min(rate_from, month_start)
    if scope.everything and not only:  # the folded billed cost: per key, per project, by day
        by_key = store.folded_cost_days(first, today + DAY, "api_key")
        by_project = store.folded_cost_days(first, today + DAY, "project")
    else:
        group = ["day", "api_key_id", "project_id"]
        by_key = by_project = [
            r
            for r in store.cost_totals(first, today + DAY, group, where=only)
            if scope.allows(r["api_key_id"])
        ]
    days_left = (month_end - today) // DAY

    def projection(
        label: Callable[[Mapping[str, Any]], str], rows: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Decimal]] = {}
        for row in rows:
            entry = out.setdefault(
                label(row), {"complete": Decimal(0), "today": Decimal(0), "rate_sum": Decimal(0)}
            )
            if month_start <= row["day"] < today:
                entry["complete"] += row["amount"]
            elif row["day"] == today:
                entry["today"] += row["amount"]
            if rate_from <= row["day"] < today:
                entry["rate_sum"] += row["amount"]
        return {name: _figures(e, run_rate_days, days_left) for name, e in out.items()}

    org = projection(lambda r: "organization", by_key).get("organization") or _figures(
        {"complete": Decimal(0), "today": Decimal(0), "rate_sum": Decimal(0)},
        run_rate_days,
        days_left,
    )
    return {
        "month_start": month_start,
        "month_end": month_end,
        "days_left": days_left,
        "method": (
            f"billed cost of this month's complete UTC days, plus the average daily bill of the "
            f"last {run_rate_days} complete days times the {days_left} days left (today included)"
        ),
        "organization": org,
        "projects": _ranked(projection(lambda r: names.project(r["project_id"]), by_project)),
        "people": _ranked(projection(lambda r: names.person(r["api_key_id"]), by_key)),
    }


def _figures(entry: Mapping[str, Decimal], run_rate_days: int, days_left: int) -> dict[str, Any]:
    # The projection is made of the figures shown, rounded as shown: they add up as written
    # ("$X through yesterday + $Y/day x N days").
    rate = (entry["rate_sum"] / run_rate_days).quantize(CENT)
    return {
        "month_to_date": entry["complete"] + entry["today"],
        "before_today": entry["complete"],
        "daily_run_rate": rate,
        "projected_month_end": (entry["complete"] + rate * days_left).quantize(CENT),
    }


def _ranked(figures: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [{"name": name, **f} for name, f in figures.items()]
    return sorted(rows, key=lambda r: -r["projected_month_end"])


def daily_billed(
    store: Store, names: Names, now: int, person: str, *, scope: Scope = EVERYTHING
) -> list[dict[str, Any]]:
    """A person's billed cost per UTC day of this month so far (their month trend)."""
    month_start, _ = month_bounds(now)
    per_day: dict[int, Decimal] = {}
    for row in store.cost_totals(month_start, now - now % DAY + DAY, ["day", "api_key_id"]):
        if scope.allows(row["api_key_id"]) and names.person(row["api_key_id"]) == person:
            per_day[row["day"]] = per_day.get(row["day"], Decimal(0)) + row["amount"]
    return [
        {"day": d, "billed": per_day.get(d, Decimal(0))}
        for d in range(month_start, now - now % DAY + DAY, DAY)
    ]

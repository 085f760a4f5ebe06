"""Monthly statements: what each team owes for a UTC month, per person within it, per provider
and connection, in billed cost (the providers' Costs and cost reports), tokens and requests.

Costs no team carries (a provider's organization-level line items, which name no key; the keys
of no team) are allocated by the rule the admin picks: ``proportional`` to each team's own
billed cost, or all to one team (``team:Platform``); each allocation is a line of its own.
Every amount is shown in cents, and the statement's total is the month's billed cost to the
cent: what rounding leaves over goes to a ``rounding`` line, on the team with the most.

A month **closes** when the providers' revision window (``COSTS_LOOKBACK_DAYS``) after its end
has passed: its statement is then kept as it is and never changes. A revision that arrives
later (a re-synced month) appears in the next open month's statement as an ``adjustment`` line
per team, the difference from what the closed statement said.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from usage_tracker.people.names import NO_TEAM, Names
from usage_tracker.reports.common import DAY, ReportError
from usage_tracker.reports.summary import cost_totals, usage_totals
from usage_tracker.store import Store
from usage_tracker.store import statements as kept

CENT = Decimal("0.01")
MONTH_PATTERN = r"^(20\d{2})-(0[1-9]|1[0-2])$"
"""A month the tracker can have data of: YYYY-MM from 2000 on."""
MONTH = re.compile(MONTH_PATTERN)
ADJUSTED_MONTHS = 12
"""How many of the closed months before a statement's are checked for revisions (the
latest)."""
NO_KEY = "organization-level costs (no key)"
UNTEAMED = "keys of no team"


@dataclass(frozen=True)
class Allocation:
    """How the costs no team carries are shared: ``proportional`` or ``team:<name>``."""

    rule: str = "proportional"

    @classmethod
    def parse(cls, text: str) -> Allocation:
        text = text.strip()
        if text == "proportional" or (text.startswith("team:") and text[5:].strip()):
            return cls(text if text == "proportional" else f"team:{text[5:].strip()}")
        raise ReportError(
            f"allocation {text!r}: expected proportional (to each team's billed cost) or "
            "team:NAME (all to one team)",
            "allocation",
        )

    @property
    def team(self) -> str | None:
        return self.rule[5:] if self.rule.startswith("team:") else None

    def shares(self, direct: dict[str, Decimal]) -> dict[str, Decimal]:
        """Each team's share (summing to 1) of what no team carries."""
        if self.team is not None:
            return {self.team: Decimal(1)}
        billed = {t: a for t, a in direct.items() if a > 0 and t != NO_TEAM}
        total = sum(billed.values(), Decimal(0))
        if not total:
            return {NO_TEAM: Decimal(1)}  # no team was billed: nothing to share it by
        return {t: a / total for t, a in billed.items()}


def month_range(month: str) -> tuple[int, int]:
    """[first second, first second of the next) of ``YYYY-MM`` (UTC)."""
    found = MONTH.match(month)
    if not found:
        raise ReportError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11", "month")
    year, number = int(found[1]), int(found[2])
    start = int(dt.datetime(year, number, 1, tzinfo=dt.UTC).timestamp())
    return start, start + calendar.monthrange(year, number)[1] * DAY


def month_of(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m")


def statement(
    store: Store,
    names: Names,
    month: str,
    now: int,
    *,
    allocation: Allocation,
    lookback_days: int,
) -> dict[str, Any]:
    """The statement of ``month``: kept as it was if the month is closed (closing it now, once,
    if it has just closed), else as the data stands."""
    start, end = month_range(month)
    if start > now:
        raise ReportError(f"month {month} has not begun: no statement yet", "month", status=404)
    with store.transaction() as conn:
        stored = kept.closed(conn)
    if month in stored:
        return _kept(stored[month])
    closes_at = end + lookback_days * DAY
    body, exact = _compute(store, names, month, allocation, stored)
    body |= {"closed": now >= closes_at, "closes_at": closes_at}
    if not body["closed"]:
        return body
    with store.transaction() as conn:
        kept.keep(
            conn,
            {
                "month": month,
                "closed_at": now,
                "allocation": allocation.rule,
                "body": json.dumps(body, default=str),
                "team_totals": json.dumps(exact, default=str),
            },
        )
        stored = kept.closed(conn)
    return _kept(stored[month])  # what was kept: this process's, or another's that was first


def _kept(row: dict[str, Any]) -> dict[str, Any]:
    """A kept statement as it was computed: its amounts (``…_usd``) Decimal again."""
    body: dict[str, Any] = _amounts(json.loads(row["body"]))
    body["closed_at"] = row["closed_at"]
    return body


def _amounts(value: Any) -> Any:
    if isinstance(value, list):
        return [_amounts(v) for v in value]
    if isinstance(value, dict):
        return {
            k: Decimal(v) if k.endswith("_usd") and isinstance(v, str) else _amounts(v)
            for k, v in value.items()
        }
    return value


def _figures(
    store: Store, names: Names, month: str, *, usage: bool = True
) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """The month per (team, person, connection) with billed cost, tokens and requests; and what
    no team carries per (what, connection). Without ``usage``, billed cost only (all that a
    revision can change)."""
    start, end = month_range(month)
    direct: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"billed": Decimal(0), "tokens": 0, "requests": 0}
    )
    unassigned: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"billed": Decimal(0), "tokens": 0, "requests": 0}
    )

    def into(key_id: str, connection: str) -> dict[str, Any]:
        if not key_id:
            return unassigned[(NO_KEY, connection)]
        team = names.team(key_id)
        if team == NO_TEAM:
            return unassigned[(UNTEAMED, connection)]
        return direct[(team, names.person(key_id), connection)]

    for row in cost_totals(store, names, start, end, ["connection", "api_key_id"]):
        into(row["api_key_id"] or "", row["connection"])["billed"] += row["amount"]
    if not usage:
        return dict(direct), dict(unassigned)
    used = usage_totals(
        store, names, start, end, ["connection", "api_key"], metrics=("num_model_requests",)
    )
    for row in used:
        figures = into(row["api_key"] or "", row["connection"] or "")
        figures["tokens"] += row["tokens"]
        figures["requests"] += row["num_model_requests"]
    return dict(direct), dict(unassigned)


def _team_exact(
    direct: dict[tuple[str, str, str], dict[str, Any]],
    unassigned: dict[tuple[str, str], dict[str, Any]],
    allocation: Allocation,
) -> tuple[dict[str, Decimal], dict[tuple[str, str, str], Decimal]]:
    """Each team's exact amount (its own and its share of what no team carries), and each
    share per (team, what, connection)."""
    own: dict[str, Decimal] = defaultdict(Decimal)
    for (team, _, _), figures in direct.items():
        own[team] += figures["billed"]
    shares = allocation.shares(dict(own))
    allocated: dict[tuple[str, str, str], Decimal] = {}
    exact = dict(own)
    for (what, connection), figures in unassigned.items():
        for team, share in shares.items():
            amount = figures["billed"] * share
            allocated[(team, what, connection)] = amount
            exact[team] = exact.get(team, Decimal(0)) + amount
    return exact, allocated


def _compute(
    store: Store,
    names: Names,
    month: str,
    allocation: Allocation,
    stored: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statement, and what is kept of it to find revisions: each team's exact amount and
    each adjustment it made ``[team, of month, amount]``."""
    direct, unassigned = _figures(store, names, month)
    exact, allocated = _team_exact(direct, unassigned, allocation)
    lines: list[dict[str, Any]] = []
    exact_lines: list[Decimal] = []

    def line(
        team: str, kind: str, what: str, connection: str, amount: Decimal, **more: Any
    ) -> None:
        exact_lines.append(amount)
        lines.append(
            {
                "team": team,
                "cost_centre": names.cost_centre(team),
                "line": kind,
                "what": what,
                "provider": names.provider(connection) if connection else None,
                "connection": connection or None,
                "billed_usd": amount.quantize(CENT, ROUND_HALF_EVEN),
                "tokens": more.get("tokens"),
                "requests": more.get("requests"),
                **{k: v for k, v in more.items() if k not in ("tokens", "requests")},
            }
        )

    for (team, person, connection), figures in sorted(direct.items()):
        line(
            team,
            "usage",
            person,
            connection,
            figures["billed"],
            tokens=figures["tokens"],
            requests=figures["requests"],
        )
    for (team, what, connection), amount in sorted(allocated.items()):
        line(team, "allocated", f"share of {what} ({allocation.rule})", connection, amount)
    adjustments = _adjustments(store, names, month, stored)
    for (team, of), amount in sorted(adjustments.items()):
        line(team, "adjustment", f"revision of {of}", "", amount, of=of)
    billed = sum((f["billed"] for f in direct.values()), Decimal(0)) + sum(
        (f["billed"] for f in unassigned.values()), Decimal(0)
    )
    adjusted = sum(adjustments.values(), Decimal(0))
    total = (billed + adjusted).quantize(CENT, ROUND_HALF_EVEN)
    residue = total - sum((ln["billed_usd"] for ln in lines), Decimal(0))
    per_team: dict[str, Decimal] = defaultdict(Decimal)
    for ln in lines:
        per_team[ln["team"]] += ln["billed_usd"]
    if residue:
        biggest = max(per_team, key=lambda t: (per_team[t], t)) if per_team else NO_TEAM
        line(biggest, "rounding", "rounding of the lines to cents", "", residue)
        per_team[biggest] += residue
    teams = [
        {
            "team": team,
            "cost_centre": names.cost_centre(team),
            "total_usd": amount,
            "lines": [ln for ln in lines if ln["team"] == team],
        }
        for team, amount in sorted(per_team.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    body = {
        "month": month,
        "allocation": allocation.rule,
        "billed_usd": billed.quantize(CENT, ROUND_HALF_EVEN),
        "adjustments_usd": adjusted.quantize(CENT, ROUND_HALF_EVEN),
        "total_usd": total,
        "teams": teams,
        "unassigned": [
            {
                "what": what,
                "connection": connection,
                "provider": names.provider(connection),
                "billed_usd": figures["billed"].quantize(CENT, ROUND_HALF_EVEN),
                "tokens": figures["tokens"],
                "requests": figures["requests"],
            }
            for (what, connection), figures in sorted(unassigned.items())
        ],
        "lines": lines,
    }
    made = [[team, of, amount] for (team, of), amount in sorted(adjustments.items())]
    return body, {"teams": exact, "adjustments": made}


def _adjustments(
    store: Store, names: Names, month: str, stored: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], Decimal]:
    """Per (team, closed month before ``month``): what a revision since it closed changed, less
    what closed statements in between already adjusted."""
    found: dict[tuple[str, str], Decimal] = {}
    for earlier in sorted(m for m in stored if m < month)[-ADJUSTED_MONTHS:]:
        row = stored[earlier]
        said = {t: Decimal(a) for t, a in json.loads(row["team_totals"])["teams"].items()}
        for later, other in stored.items():  # what closed statements since adjusted of it
            if earlier < later < month:
                for team, of, amount in json.loads(other["team_totals"])["adjustments"]:
                    if of == earlier:
                        said[team] = said.get(team, Decimal(0)) + Decimal(amount)
        direct, unassigned = _figures(store, names, earlier, usage=False)
        now_exact, _ = _team_exact(direct, unassigned, Allocation(row["allocation"]))
        for team in sorted(set(now_exact) | set(said)):
            delta = now_exact.get(team, Decimal(0)) - said.get(team, Decimal(0))
            if delta.quantize(CENT, ROUND_HALF_EVEN):
                found[(team, earlier)] = delta
    return found

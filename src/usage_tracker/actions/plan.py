"""Which actions the budget rules ask for now. Pure reading, like the alerts' evaluation: what
is recorded and done is the engine's.

An action is planned when a budget rule names one and its budget is spent (100 %): for
``pause_keys``, the keys of the rule's person (or its key) in each connection that holds any;
for ``project_limit``, the project's hard spend limit, set to the provider-billed cost of the
project this month plus what the budget has left (none, once it is spent), in whole cents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from usage_tracker import reports
from usage_tracker.alerts.evaluate import HOUR, Inputs, budget_alerts
from usage_tracker.alerts.rules import AlertRules, BudgetRule
from usage_tracker.providers.openai.contract import align_down
from usage_tracker.reports.forecast import month_bounds

SPENT = 100.0
"""The share of a budget at which its action is planned."""
STALE_KEY_SECONDS = 2 * 86400
"""A key not listed by its provider for this long before the newest listing is gone."""


@dataclass(frozen=True)
class Planned:
    """One action a rule asks for in one connection."""

    connection: str
    provider: str
    rule: str
    subject: str
    """``person:<name>``, ``key:<id>`` or ``project:<id or name>``."""
    period: str
    kind: str
    mode: str
    reason: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    writable: bool = False
    """Whether the connection has a write key (without one, nothing is ever written)."""
    blocked: str | None = None
    """Why it will not be done (None: it will, once recorded and approved)."""
    channels: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        """What the store records."""
        return {
            "connection": self.connection,
            "rule": self.rule,
            "subject": self.subject,
            "period": self.period,
            "kind": self.kind,
            "mode": self.mode,
            "reason": self.reason,
            "targets": self.targets,
        }


def plan(
    rules: AlertRules, inputs: Inputs, now: int, writable: Mapping[str, bool]
) -> list[Planned]:
    """Every action the rules ask for at ``now``, per connection. ``writable``: each
    connection's name → whether it has a write key."""
    found: list[Planned] = []
    providers = inputs.store.connections()
    for rule in rules.budgets:
        if rule.action is None:
            continue
        for planned in _of_rule(rule, inputs, now, providers):
            can = writable.get(planned.connection, False)
            blocked = None if can else "this connection has no write key"
            if planned.kind == "project_limit" and planned.provider == "anthropic":
                blocked = "Anthropic's workspace spend limits are not written by this version"
            found.append(Planned(**{**planned.__dict__, "writable": can, "blocked": blocked}))
    return found


def _of_rule(
    rule: BudgetRule, inputs: Inputs, now: int, providers: Mapping[str, str]
) -> Iterator[Planned]:
    firings = list(budget_alerts(rule, inputs, now))
    if not firings or firings[0].payload["percent"] < SPENT:
        return
    payload = firings[0].payload
    kind, value = rule.subject
    common = {
        "rule": rule.rule_id,
        "subject": f"{kind}:{value}",
        "period": payload["period"],
        "kind": rule.action,
        "mode": rule.mode,
        "reason": firings[0].lines[0],
        "channels": rule.channels,
    }
    if rule.action == "pause_keys":
        for connection, keys in _keys(inputs, kind, value).items():
            yield Planned(
                connection=connection,
                provider=providers.get(connection, "openai"),
                targets=keys,
                **common,
            )
        return
    for project in _projects(inputs, value):
        start, end = month_bounds(now)
        hi = min(end, align_down(now, "1h") + HOUR)
        billed = reports.summary(
            inputs.store,
            inputs.names,
            start,
            hi,
            where={"project_id": [project["project_id"]]},
        )["billed_usd"]
        left = max(Decimal(0), rule.limit - Decimal(payload["used"]))
        cents = int((((billed or Decimal(0)) + left) * 100).to_integral_value(ROUND_FLOOR))
        yield Planned(
            connection=project["connection"],
            provider=providers.get(project["connection"], "openai"),
            targets=[{**project, "cents": cents}],
            **common,
        )


def _keys(inputs: Inputs, kind: str, value: str) -> dict[str, list[dict[str, Any]]]:
    """The person's (or the key's) keys that their provider still lists, per connection."""
    rows = inputs.store.api_keys()
    newest: dict[str, int] = defaultdict(int)
    for row in rows:
        newest[row["connection"]] = max(newest[row["connection"]], int(row["last_seen_at"]))
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["connection"], r["id"])):
        if int(row["last_seen_at"]) < newest[row["connection"]] - STALE_KEY_SECONDS:
            continue
        mine = row["id"] == value if kind == "key" else inputs.names.person(row["id"]) == value
        if mine:
            found[row["connection"]].append(
                {
                    "project_id": row["project_id"],
                    "key_id": row["id"],
                    "name": inputs.names.key(row["id"]),
                }
            )
    return dict(found)


def _projects(inputs: Inputs, value: str) -> list[dict[str, Any]]:
    return [
        {"project_id": row["id"], "name": row.get("name") or row["id"], "connection": c}
        for row in inputs.store.projects()
        if value in (row["id"], row.get("name")) and (c := row["connection"])
    ]

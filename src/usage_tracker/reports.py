"""Every aggregation the product shows, one function per question, all read from the store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from usage_tracker.names import Names
from usage_tracker.pools import NOT_ELIGIBLE, POOLS, UNCLASSIFIED, PoolTable
from usage_tracker.store import Store
from usage_tracker.upstream.contract import METRICS, align_down

DAY, HOUR = 86400, 3600
COMPLIMENTARY_TIER = "incentivized-tier"

GROUPINGS: dict[str, str] = {
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


def load_names(store: Store, mapping: dict[str, str] | None = None) -> Names:
    return Names(
        keys={k["id"]: k for k in store.api_keys()},
        users={u["id"]: u for u in store.users()},
        projects={p["id"]: p for p in store.projects()},
        mapping=mapping or {},
    )


def _label(names: Names, grouping: str, value: Any) -> Any:
    if grouping == "person":
        return names.person(value)
    if grouping == "batch":
        return {"true": True, "false": False}.get(value)
    if grouping in ("day", "hour"):
        return value
    return value or None


def _display(names: Names, grouping: str, value: Any) -> str | None:
    lookup = {
        "api_key": names.person,
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
) -> list[dict[str, Any]]:
    """Usage in [start, end) grouped by any of :data:`GROUPINGS`, biggest total first.

    Each row has the group values (``None`` where upstream had none), a display ``name`` for
    each of api_key / user / project grouped, every metric and ``tokens`` (input + output:
    ``input_tokens`` already holds the cached ones)."""
    unknown = [g for g in group_by if g not in GROUPINGS]
    if unknown:
        raise ReportError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUPINGS)}"
        )
    if start % HOUR or end % HOUR or end <= start:
        raise ReportError("the range must be whole UTC hours with start before end")
    columns = list(dict.fromkeys(GROUPINGS[g] for g in group_by))
    metrics = list(dict.fromkeys([*metrics, "input_tokens", "output_tokens"]))
    rows = store.usage_totals(start, end, columns, sources=sources, metrics=metrics)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(_label(names, g, row[GROUPINGS[g]]) for g in group_by)
        out = merged.get(key)
        if out is None:
            out = merged[key] = dict(zip(group_by, key, strict=True))
            for g in group_by:
                if (display := _display(names, g, row[GROUPINGS[g]])) is not None:
                    out[f"{g}_name"] = display
            out.update(dict.fromkeys(metrics, 0))
        for m in metrics:
            out[m] += row[m]
    result = list(merged.values())
    for row in result:
        row["tokens"] = row["input_tokens"] + row["output_tokens"]
    if group_by and group_by[0] in ("day", "hour"):
        return sorted(result, key=lambda r: r[group_by[0]])
    return sorted(result, key=lambda r: (-r["tokens"], -r.get("num_model_requests", 0)))


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


def pool_usage(
    store: Store,
    names: Names,
    table: PoolTable,
    now: int,
    *,
    usage_tier: str = "1-2",
    sharing_projects: Iterable[str] = (),
) -> PoolReport:
    """Today's (UTC) completions usage against the complimentary pools.

    Only traffic of ``sharing_projects`` counts (all projects when empty). Unknown models are
    listed as unclassified and counted in no pool."""
    day_start = align_down(now, "1d")
    end = align_down(now, "1h") + HOUR
    sharing = set(sharing_projects)
    rows = store.usage_totals(
        day_start,
        end,
        ["model", "project_id", "api_key_id", "service_tier"],
        sources=["completions"],
        metrics=["input_tokens", "output_tokens"],
    )
    pools = {p: PoolStatus(p, table.limit(usage_tier, p)) for p in POOLS}
    not_eligible: dict[str, int] = {}
    unclassified: dict[str, int] = {}
    for row in rows:
        tokens = row["input_tokens"] + row["output_tokens"]
        pool = table.classify(row["model"])
        if pool == UNCLASSIFIED:
            unclassified[row["model"]] = unclassified.get(row["model"], 0) + tokens
            continue
        if pool == NOT_ELIGIBLE or (sharing and row["project_id"] not in sharing):
            not_eligible[row["model"]] = not_eligible.get(row["model"], 0) + tokens
            continue
        status = pools[pool]
        status.used += tokens
        if row["service_tier"] == COMPLIMENTARY_TIER:
            status.reported_complimentary += tokens
        status.models[row["model"]] = status.models.get(row["model"], 0) + tokens
        person = names.person(row["api_key_id"])
        status.people[person] = status.people.get(person, 0) + tokens
    elapsed = max(now - day_start, 60)  # a minute at least: no huge rate just after midnight
    for status in pools.values():
        status.burn_per_hour = status.used * HOUR / elapsed
        if status.used >= status.limit:
            status.exhausted_at = now if status.used else None
        elif status.used:
            at = now + int((status.limit - status.used) * elapsed / status.used)
            status.exhausted_at = at if at < day_start + DAY else None
    return PoolReport(day_start, now, usage_tier, table.as_of, pools, not_eligible, unclassified)


def cost_totals(
    store: Store, names: Names, start: int, end: int, group_by: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Billed cost (the Costs API, whole UTC days) grouped by project_id, line_item, api_key_id
    or day, biggest first."""
    allowed = ("project_id", "line_item", "api_key_id", "day")
    unknown = [g for g in group_by if g not in allowed]
    if unknown:
        raise ReportError(f"cannot group costs by {', '.join(unknown)}")
    rows = store.cost_totals(align_down(start, "1d"), end, group_by)
    for row in rows:
        if "api_key_id" in row:
            row["name"] = names.person(row["api_key_id"])
        elif "project_id" in row:
            row["name"] = names.project(row["project_id"])
    return sorted(rows, key=lambda r: -r["amount"])

"""Today's use of OpenAI's daily complimentary-token pools, per pool and per key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.providers.openai.contract import align_down
from usage_tracker.providers.openai.pools import NOT_ELIGIBLE, POOLS, UNCLASSIFIED, PoolTable
from usage_tracker.providers.prices import COMPLIMENTARY_TIER
from usage_tracker.reports.common import DAY, HOUR
from usage_tracker.store import Store


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

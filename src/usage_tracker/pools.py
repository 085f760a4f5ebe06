"""The complimentary daily token pools: which model counts toward which pool, and the limits.

The table is data (``data/pools.json``, dated), overridable by a file of the same format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from usage_tracker.jsonfiles import parse_json_object

POOLS = ("large", "small")
UNCLASSIFIED = "unclassified"
NOT_ELIGIBLE = "not eligible"


class PoolTableError(Exception):
    """A pool table file cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    pool: str | None


@dataclass(frozen=True)
class PoolTable:
    as_of: str
    limits: dict[str, dict[str, int]]
    rules: tuple[Rule, ...]

    def classify(self, model: str) -> str:
        """``"large"``, ``"small"``, :data:`NOT_ELIGIBLE` or :data:`UNCLASSIFIED`."""
        for rule in self.rules:
            if rule.pattern.search(model):
                return rule.pool or NOT_ELIGIBLE
        return UNCLASSIFIED

    def limit(self, usage_tier: str, pool: str) -> int:
        return self.limits[usage_tier][pool]


def _parse(text: str, origin: str) -> dict[str, Any]:
    try:
        return parse_json_object(text, origin)
    except ValueError as e:
        raise PoolTableError(str(e)) from None


def _rules(data: dict[str, Any], origin: str) -> list[Rule]:
    rules = []
    for i, raw in enumerate(data.get("rules", [])):
        pool = raw.get("pool") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or "pattern" not in raw or pool not in (*POOLS, None):
            raise PoolTableError(
                f"{origin}: rules[{i}] needs a 'pattern' and a 'pool' of large, small or null"
            )
        try:
            rules.append(Rule(re.compile(raw["pattern"]), pool))
        except re.error as e:
            raise PoolTableError(f"{origin}: rules[{i}] pattern is not a regex: {e}") from None
    return rules


def load_pool_table(override: Path | None = None) -> PoolTable:
    """The shipped table, with ``override``'s rules tried first and its limits on top."""
    shipped = resources.files("usage_tracker").joinpath("data/pools.json").read_text()
    base = _parse(shipped, "data/pools.json")
    rules = _rules(base, "data/pools.json")
    limits = {tier: dict(pools) for tier, pools in base["limits"].items()}
    as_of = str(base["as_of"])
    if override is not None:
        # Errors reach /api/health, which needs no sign-in: the file's name, not its path.
        origin = f"TIERS_FILE {override.name}"
        try:
            text = override.read_text()
        except OSError as e:
            raise PoolTableError(f"{origin}: cannot read: {e.strerror}") from None
        extra = _parse(text, origin)
        rules = _rules(extra, origin) + rules
        for tier, pools in extra.get("limits", {}).items():
            limits.setdefault(tier, {}).update({k: int(v) for k, v in pools.items()})
        as_of = str(extra.get("as_of", as_of))
    return PoolTable(as_of, limits, tuple(rules))

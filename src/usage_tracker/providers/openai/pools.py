"""The complimentary daily token pools: which model counts toward which pool, and the limits.

The table is data (``data/pools.json``, dated, with its source): the models OpenAI's help
article lists, by name, so that a new model is unclassified rather than silently counted.
A file of the same format (TIERS_FILE) overrides or extends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from usage_tracker.text.documents import parse_json_object

POOLS = ("large", "small")
UNCLASSIFIED = "unclassified"
NOT_ELIGIBLE = "not eligible"


class PoolTableError(Exception):
    """A pool table file cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    pool: str | None


_DATED = re.compile(r"^(?P<name>.+)-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Layer:
    """One file's say: models by name (see :func:`_by_name`), then its patterns."""

    names: dict[str, str | None]
    rules: tuple[Rule, ...]

    def classify(self, model: str) -> str | None:
        """The pool, :data:`NOT_ELIGIBLE`, or None when this layer does not know ``model``."""
        if model in self.names:
            return self.names[model] or NOT_ELIGIBLE
        dated = _DATED.match(model)
        if dated and self.names.get(dated["name"]) is not None:
            return self.names[dated["name"]]  # a dated snapshot of a model listed bare
        for rule in self.rules:
            if rule.pattern.search(model):
                return rule.pool or NOT_ELIGIBLE
        return None


@dataclass(frozen=True)
class PoolTable:
    as_of: str
    limits: dict[str, dict[str, int]]
    layers: tuple[Layer, ...]
    """TIERS_FILE's first, the shipped table's last."""

    def classify(self, model: str) -> str:
        """``"large"``, ``"small"``, :data:`NOT_ELIGIBLE` or :data:`UNCLASSIFIED`."""
        for layer in self.layers:
            if (pool := layer.classify(model)) is not None:
                return pool
        return UNCLASSIFIED

    def limit(self, usage_tier: str, pool: str) -> int:
        return self.limits[usage_tier][pool]


def _parse(text: str, origin: str) -> dict[str, Any]:
    try:
        return parse_json_object(text, origin)
    except ValueError as e:
        raise PoolTableError(str(e)) from None


def _rules(data: dict[str, Any], origin: str) -> tuple[Rule, ...]:
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
    return tuple(rules)


def _by_name(data: dict[str, Any], origin: str) -> dict[str, str | None]:
    """``models`` as listed, plus each listed snapshot's undated alias (gpt-5.4 for
    gpt-5.4-2026-03-05) where every snapshot of that alias is in the same pool."""
    listed = data.get("models", {})
    if not isinstance(listed, dict):
        raise PoolTableError(f"{origin}: 'models' must be an object of model name to pool")
    for model, pool in listed.items():
        if pool not in (*POOLS, None):
            raise PoolTableError(
                f"{origin}: models[{model!r}] must be large, small or null, not {pool!r}"
            )
    aliases: dict[str, set[str | None]] = {}
    for model, pool in listed.items():
        if dated := _DATED.match(model):
            aliases.setdefault(dated["name"], set()).add(pool)
    undated = {alias: pools.pop() for alias, pools in aliases.items() if len(pools) == 1}
    return {**undated, **listed}


def _layer(data: dict[str, Any], origin: str) -> Layer:
    return Layer(_by_name(data, origin), _rules(data, origin))


def load_pool_table(override: Path | None = None) -> PoolTable:
    """The shipped table, with ``override``'s models and rules tried first and its limits on
    top."""
    shipped = resources.files("usage_tracker").joinpath("data/pools.json").read_text()
    base = _parse(shipped, "data/pools.json")
    layers = [_layer(base, "data/pools.json")]
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
        layers.insert(0, _layer(extra, origin))
        for tier, pools in extra.get("limits", {}).items():
            limits.setdefault(tier, {}).update({k: int(v) for k, v in pools.items()})
        as_of = str(extra.get("as_of", as_of))
    return PoolTable(as_of, limits, tuple(layers))

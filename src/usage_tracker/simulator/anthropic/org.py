"""The synthetic company seen as an Anthropic organization.

The company's completions traffic is its Claude traffic here: each OpenAI key has an Anthropic
twin (``apikey_…``) owned by the same person, each project is a workspace (``wrkspc_…``), and
each model maps to one Claude model, billed at the prices below (Message Batches at half).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from usage_tracker.simulator.company import Event, SimKey
from usage_tracker.simulator.org import Organization

CLAUDE = ("claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-8")
PRICES = {  # USD per 1M tokens: input, 5-minute cache write, cache read, output
    "claude-opus-4-8": (Decimal(5), Decimal("6.25"), Decimal("0.50"), Decimal(25)),
    "claude-sonnet-4-6": (Decimal(3), Decimal("3.75"), Decimal("0.30"), Decimal(15)),
    "claude-haiku-4-5-20251001": (Decimal(1), Decimal("1.25"), Decimal("0.10"), Decimal(5)),
}


def claude_model(openai_model: str) -> str:
    """The Claude model an OpenAI model's traffic becomes (stable: a sum of its letters)."""
    return CLAUDE[sum(map(ord, openai_model)) % len(CLAUDE)]


def key_id(key: str) -> str:
    return "apikey_" + key.removeprefix("key_")


def workspace_id(project: str) -> str:
    return "wrkspc_" + project.removeprefix("proj_")


def user_id(user: str) -> str:
    return "user_" + user.removeprefix("user-")


@dataclass(frozen=True)
class Row:
    """One completions event as Anthropic reports it."""

    ts: int
    group: dict[str, Any]
    uncached: int
    cache_read: int
    cache_write: int
    output: int
    requests: int

    @property
    def cents(self) -> Decimal:
        price_in, write, read, price_out = PRICES[self.group["model"]]
        usd = (
            self.uncached * price_in
            + self.cache_write * write
            + self.cache_read * read
            + self.output * price_out
        ) / 1_000_000
        if self.group["service_tier"] == "batch":  # the Message Batches API: half price
            usd /= 2
        return usd * 100


class AnthropicOrganization:
    """The company of an :class:`Organization`, as Anthropic would report it."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.keys = {k.id: k for k in org.keys}

    def rows(self, start: int, end: int) -> Iterator[Row]:
        for event in self.org.events(start, end):
            if event.source == "completions":
                yield self._row(event)

    def _row(self, event: Event) -> Row:
        m = dict(event.metrics)
        dims = dict(zip(("project_id", "user_id", "api_key_id"), event.dims[:3], strict=True))
        key = self.keys[str(dims["api_key_id"])]
        tier = _tier(event)
        group = {
            "api_key_id": key_id(key.id),
            "workspace_id": workspace_id(key.project_id),
            "model": claude_model(str(_dimension(event, "model"))),
            "service_tier": tier,
            "actor": _actor(key),
        }
        cache_write = m.get("input_cache_write_tokens", 0)
        cache_read = m.get("input_cached_tokens", 0)
        return Row(
            event.ts,
            group,
            m["input_tokens"] - cache_read - cache_write,
            cache_read,
            cache_write,
            m["output_tokens"],
            m.get("num_model_requests", 0),
        )

    def truth(
        self, start: int, end: int, group_by: tuple[str, ...] = ()
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """Tokens in the tracker's meaning (``input_tokens`` every input token, cached ones
        the cache reads) in [start, end), per ``group_by`` values."""
        out: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
        for row in self.rows(start, end):
            totals = out[tuple(_plain(row.group[g]) for g in group_by)]
            totals["input_tokens"] += row.uncached + row.cache_read + row.cache_write
            totals["input_cached_tokens"] += row.cache_read
            totals["input_cache_write_tokens"] += row.cache_write
            totals["output_tokens"] += row.output
            totals["num_model_requests"] += row.requests
        return {k: dict(v) for k, v in out.items()}

    def cost_truth(self, start: int, end: int) -> Decimal:
        """Billed USD of the UTC days in [start, end)."""
        return sum((r.cents for r in self.rows(start, end)), Decimal(0)) / 100


def _plain(value: Any) -> Any:
    return value["user_id"] if isinstance(value, dict) and "user_id" in value else value


def _dimension(event: Event, name: str) -> Any:
    from usage_tracker.providers.records import DIMENSIONS

    return event.dims[DIMENSIONS.index(name)]


def _tier(event: Event) -> str:
    if _dimension(event, "batch") is True:
        return "batch"
    tier = str(_dimension(event, "service_tier") or "default")
    return {"priority": "priority", "flex": "flex"}.get(tier, "standard")


def _actor(key: SimKey) -> dict[str, Any]:
    """Who the usage is attributed to: the key's user, else the key itself."""
    if key.owner_type != "user":
        return {"type": "api_actor", "api_key_id": key_id(key.id)}
    return {
        "type": "user_actor",
        "user_id": user_id(key.owner_id),
        "email_address": key.owner_email,
        "name": key.owner_name,
        "deleted": False,
    }

"""List prices for estimates: pydantic's maintained ``genai-prices`` data, with ``PRICES_FILE``
able to add or override models.

A stored usage row sums many requests, but the library prices *one* request (long-context
rates switch on per request): a row is priced as its average request times its request count.
The price in force at the row's time is used, with its service tier (``flex``, ``priority``,
default) and the Batch API's discount; cached input, cache writes and audio tokens have their
own rates. A model neither the library nor the file knows is unpriced (``None``), never $0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price

from usage_tracker.jsonfiles import parse_json_object

COMPLIMENTARY_TIER = "incentivized-tier"
MILLION = Decimal(1_000_000)
TIERS = ("flex", "priority")
"""Service tiers with prices of their own; every other tier is priced as the default."""


class PricesFileError(ValueError):
    """PRICES_FILE cannot be used; the message names the file, line and column or the model."""


@dataclass(frozen=True)
class Override:
    """USD per 1M tokens, from PRICES_FILE."""

    input: Decimal
    cached_input: Decimal
    output: Decimal


class Prices:
    def __init__(self, overrides: Mapping[str, Override] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.as_of = f"genai-prices {version('genai-prices')}"

    @classmethod
    def load(cls, path: Path | None) -> Prices:
        """The library's prices with ``path``'s models on top (none: the library alone)."""
        if path is None:
            return cls()
        origin = f"PRICES_FILE {path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise PricesFileError(f"{origin}: cannot read it: {e.strerror}") from None
        try:
            data = parse_json_object(text, origin, 'an object {"models": {...}}')
        except ValueError as e:
            raise PricesFileError(str(e)) from None
        overrides = {}
        for model, raw in (data.get("models") or {}).items():
            try:
                overrides[str(model)] = Override(
                    Decimal(str(raw["input"])),
                    Decimal(str(raw.get("cached_input", raw["input"]))),
                    Decimal(str(raw["output"])),
                )
            except (KeyError, TypeError, ArithmeticError):
                raise PricesFileError(
                    f'{origin}: model {model!r} needs "input" and "output" (USD per 1M tokens)'
                ) from None
        return cls(overrides)

    def estimate(self, row: Mapping[str, Any], at: int) -> Decimal | None:
        """USD of one stored usage row (many requests) at list price; None when unpriced."""
        model = str(row.get("model") or "")
        tokens = int(row.get("input_tokens") or 0) + int(row.get("output_tokens") or 0)
        if not model or not tokens or row.get("service_tier") == COMPLIMENTARY_TIER:
            return Decimal(0)
        if model in self.overrides:
            return _override_price(self.overrides[model], row)
        requests = max(1, int(row.get("num_model_requests") or 0))
        one = _average_request(row, requests)
        context: dict[str, str] = {}
        if row.get("service_tier") in TIERS:
            context["service_tier"] = str(row["service_tier"])
        if row.get("batch") in (True, "true"):
            context["processing"] = "batch"
        price = _library_price(one, model, _day(at), tuple(sorted(context.items())))
        return None if price is None else price * requests


def _override_price(price: Override, row: Mapping[str, Any]) -> Decimal:
    cached = int(row.get("input_cached_tokens") or 0)
    uncached = int(row.get("input_tokens") or 0) - cached
    output = int(row.get("output_tokens") or 0)
    return (uncached * price.input + cached * price.cached_input + output * price.output) / MILLION


_USAGE_FIELDS = {
    "input_tokens": "input_tokens",
    "cache_read_tokens": "input_cached_tokens",
    "cache_write_tokens": "input_cache_write_tokens",
    "output_tokens": "output_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "cache_audio_read_tokens": "input_cached_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
}
"""genai-prices' usage keys ← OpenAI's counters (both count cached and audio tokens inside the
input and output totals)."""


def _average_request(row: Mapping[str, Any], requests: int) -> tuple[tuple[str, Decimal], ...]:
    # Every key, zeros included: the library refuses overlapping keys (cached and audio input)
    # without the one that says how they overlap.
    return tuple(
        (key, Decimal(int(row.get(field) or 0)) / requests) for key, field in _USAGE_FIELDS.items()
    )


def _day(ts: int) -> dt.datetime:
    day = ts - ts % 86400
    return dt.datetime.fromtimestamp(day, dt.UTC)


@lru_cache(maxsize=4096)
def _library_price(
    usage: tuple[tuple[str, Decimal], ...],
    model: str,
    when: dt.datetime,
    context: tuple[tuple[str, str], ...],
) -> Decimal | None:
    try:
        result = calc_price(
            Usage(**dict(usage)),
            model,
            provider_id="openai",
            genai_request_timestamp=when,
            price_context=dict(context) or None,
        )
    except LookupError:
        return None
    return Decimal(result.total_price)

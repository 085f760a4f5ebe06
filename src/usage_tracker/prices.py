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
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

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
        listed = sorted((m, o.input, o.cached_input, o.output) for m, o in self.overrides.items())
        self.fingerprint = hashlib.sha256(repr((self.as_of, listed)).encode()).hexdigest()[:16]
        """Names these prices: stored estimates made with other ones are made again."""

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
        context: dict[str, str] = {}
        if row.get("service_tier") in TIERS:
            context["service_tier"] = str(row["service_tier"])
        if row.get("batch") in (True, "true"):
            context["processing"] = "batch"
        when, key = _day(at), tuple(sorted(context.items()))
        linear = _linear_price(model, when, key)
        if linear is not None:
            per_request, per_token = linear
            totals = {k: int(row.get(f) or 0) for k, f in _USAGE_FIELDS.items()}
            return per_request * requests + sum(
                (per_token[k] * n for k, n in totals.items() if n), Decimal(0)
            )
        price = _library_price(_average_request(row, requests), model, when, key)
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
def _library_model(model: str) -> tuple[Any, Any] | None:
    """OpenAI's entry for ``model`` in the library, or None when it has none. What
    ``calc_price`` looks up on every call (a regex match over the registry, the larger part of
    its time, and as long again for a model it does not know), done once per model."""
    try:
        return get_snapshot().find_provider_model(model, None, "openai", None)
    except LookupError:
        return None


_LINEAR: dict[tuple[str, str], tuple[Decimal, dict[str, Decimal]] | None] = {}


def _linear_price(
    model: str, when: dt.datetime, context: tuple[tuple[str, str], ...]
) -> tuple[Decimal, dict[str, Decimal]] | None:
    """(price of one request, price of each token of each usage key) when the model's price in
    force at ``when`` is linear (no long-context tiers): then n requests cost n times the
    first plus the tokens times the second, the very sum the library gives for n average
    requests, at a fraction of its time. None for a tiered price (or an unknown model): the
    library prices those itself."""
    found = _library_model(model)
    if found is None:
        return None
    provider, info = found
    # The price the library resolves in ModelInfo.calc_price, same branch.
    if context and not any(info is m for m in provider.models):
        resolved = info.get_prices(when)
    else:
        resolved = info.get_prices(when, dict(context) or None)
    key = (model, repr(resolved))
    if key not in _LINEAR:
        _LINEAR[key] = _probe(resolved)
    return _LINEAR[key]


_PROBES: tuple[tuple[str, dict[str, int], tuple[str, ...]], ...] = (
    ("input_tokens", {"input_tokens": 1}, ()),
    ("cache_read_tokens", {"input_tokens": 1, "cache_read_tokens": 1}, ("input_tokens",)),
    ("cache_write_tokens", {"input_tokens": 1, "cache_write_tokens": 1}, ("input_tokens",)),
    ("output_tokens", {"output_tokens": 1}, ()),
    ("input_audio_tokens", {"input_tokens": 1, "input_audio_tokens": 1}, ("input_tokens",)),
    (
        "cache_audio_read_tokens",
        {
            "input_tokens": 1,
            "cache_read_tokens": 1,
            "input_audio_tokens": 1,
            "cache_audio_read_tokens": 1,
        },
        ("input_tokens", "cache_read_tokens", "input_audio_tokens"),
    ),
    ("output_audio_tokens", {"output_tokens": 1, "output_audio_tokens": 1}, ("output_tokens",)),
)
"""Each usage key's price from one valid usage (a cached token is an input token too, so it
cannot be priced alone) less the keys already known, in millions of tokens."""


def _probe(resolved: Any) -> tuple[Decimal, dict[str, Decimal]] | None:
    from genai_prices.types import TieredPrices

    if any(isinstance(v, TieredPrices) for v in vars(resolved).values()):
        return None

    def price(tokens: Mapping[str, int]) -> Decimal:
        usage = {k: int(tokens.get(k, 0)) * 1_000_000 for k in _USAGE_FIELDS}
        return Decimal(resolved.calc_price(Usage(**usage))["total_price"])

    per_request = price({})
    per_million: dict[str, Decimal] = {}
    for key, usage, known in _PROBES:
        per_million[key] = (
            price(usage) - per_request - sum((per_million[k] for k in known), Decimal(0))
        )
    return per_request, {k: v / MILLION for k, v in per_million.items()}


@lru_cache(maxsize=4096)
def _library_price(
    usage: tuple[tuple[str, Decimal], ...],
    model: str,
    when: dt.datetime,
    context: tuple[tuple[str, str], ...],
) -> Decimal | None:
    found = _library_model(model)
    if found is None:
        return None
    provider, info = found
    try:
        result = info.calc_price(
            Usage(**dict(usage)),
            provider,
            genai_request_timestamp=when,
            price_context=dict(context) or None,
        )
    except LookupError:
        return None
    return Decimal(result.total_price)

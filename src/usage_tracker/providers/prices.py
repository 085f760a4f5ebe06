"""List prices for estimates: pydantic's maintained ``genai-prices`` data, with the additions
shipped in ``data/prices.json`` (models it lacks, tiers it does not price) and ``PRICES_FILE``
on top, able to add or override models.

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
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from usage_tracker.text.documents import parse_json_object

COMPLIMENTARY_TIER = "incentivized-tier"
MILLION = Decimal(1_000_000)
BATCH_FACTOR = Decimal("0.5")
"""The Batch API's price against the standard one, for every model that has it."""
TIERS = ("flex", "priority")
"""Service tiers with prices of their own; every other tier is priced as the default."""


class PricesFileError(ValueError):
    """PRICES_FILE cannot be used; the message names the file, line and column or the model."""


Schedule = tuple[tuple[int | None, Decimal], ...]
"""A tier's factor over time: (last UTC day it applies, as a timestamp, or None: from then on)."""


@dataclass(frozen=True)
class Override:
    """A model's prices from the shipped additions or PRICES_FILE, USD per 1M tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    cache_write: Decimal | None = None
    """Cache writes (OpenAI's default 30-minute time to live); None: the input rate."""
    cache_write_12h: Decimal | None = None
    """12-hour cache writes; None: the 30-minute rate."""
    long_context: tuple[int, Decimal, Decimal] | None = None
    """(input tokens per request above which, input factor, output factor)."""
    tiers: tuple[tuple[str, Schedule], ...] = (("batch", ((None, BATCH_FACTOR),)),)
    """Factors on every rate per service tier (``batch``: the Batch API)."""


class Prices:
    def __init__(self, overrides: Mapping[str, Override] | None = None) -> None:
        shipped, self.tier_factors = _shipped()
        self.overrides = {**shipped, **(overrides or {})}
        self.as_of = f"genai-prices {version('genai-prices')}"
        listed = sorted((m, repr(o)) for m, o in self.overrides.items())
        tiers = sorted(self.tier_factors.items())
        self.fingerprint = hashlib.sha256(repr((self.as_of, listed, tiers)).encode()).hexdigest()[
            :16
        ]
        """Names these prices: stored estimates made with other ones are made again."""
        self._prefixes = sorted(
            (m[:-1] for m in self.overrides if m.endswith("*")), key=len, reverse=True
        )
        self._plan = lru_cache(maxsize=4096)(self._make_plan)

    @classmethod
    def load(cls, path: Path | None) -> Prices:
        """The library's prices with the shipped additions and ``path``'s models on top
        (none: the library and the additions)."""
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
        return cls(_overrides(data, origin))

    def override(self, model: str) -> Override | None:
        if model in self.overrides:
            return self.overrides[model]
        prefix = next((p for p in self._prefixes if model.startswith(p)), None)
        return None if prefix is None else self.overrides[prefix + "*"]

    def estimate(self, row: Mapping[str, Any], at: int) -> Decimal | None:
        """USD of one stored usage row (many requests) at list price; None when unpriced."""
        model = str(row.get("model") or "")
        tokens = int(row.get("input_tokens") or 0) + int(row.get("output_tokens") or 0)
        if not model or not tokens or row.get("service_tier") == COMPLIMENTARY_TIER:
            return Decimal(0)
        requests = max(1, int(row.get("num_model_requests") or 0))
        tier = str(row.get("service_tier") or "")
        batch = row.get("batch") in (True, "true")
        price, factor, when, key, linear = self._plan(model, tier, batch, at - at % 86400)
        if price is not None:
            return _override_price(price, row, requests, at)
        if linear is not None:
            per_request, per_token = linear
            totals = {k: int(row.get(f) or 0) for k, f in _USAGE_FIELDS.items()}
            price_usd = per_request * requests + sum(
                (per_token[k] * n for k, n in totals.items() if n), Decimal(0)
            )
        elif _library_model(model) is None:  # unpriced: no average request to work out
            return None
        else:
            one = _library_price(_average_request(row, requests), model, when, key)
            if one is None:
                return None
            price_usd = one * requests
        return price_usd * (factor or 1)

    def _make_plan(self, model: str, tier: str, batch: bool, day: int) -> Plan:
        """How rows of ``model`` in ``tier`` (with Batch or not) are priced on ``day``: all
        but their counts, which is the same for every row of that day (kept per instance in
        ``_plan``, as a sync writes day after day)."""
        if (price := self.override(model)) is not None:
            return price, None, _day(day), (), None
        factor = _factor(dict(self.tier_factors.get(model, ())).get(tier), day)
        context: dict[str, str] = {}
        if tier in TIERS and factor is None:
            context["service_tier"] = tier
        if batch:
            if _has_variant(model, "processing", "batch"):
                context["processing"] = "batch"
            else:  # a model the library has no Batch rate for: the Batch API's half price
                factor = (factor or Decimal(1)) * BATCH_FACTOR
        key = tuple(sorted(context.items()))
        when = _tier_day(model, key, _day(day))
        return None, factor, when, key, _linear_price(model, when, key)


Plan = tuple[
    "Override | None",
    Decimal | None,
    dt.datetime,
    tuple[tuple[str, str], ...],
    tuple[Decimal, dict[str, Decimal]] | None,
]
"""(the model's own price if it has one, the tier's factor, the day priced on, the library's
context, the linear price there if the price is linear)."""


def _variants(model: str) -> tuple[Any, ...]:
    """The library's prices of ``model`` for service tiers and Batch, each with the context
    it applies in (``when``) and, often, the day it applies from (``constraint``)."""
    found = _library_model(model)
    return tuple(getattr(found[1], "price_variants", None) or ()) if found else ()


@lru_cache(maxsize=4096)
def _has_variant(model: str, key: str, value: str) -> bool:
    return any(v.when.get(key) == value for v in _variants(model))


@lru_cache(maxsize=4096)
def _tier_day(model: str, context: tuple[tuple[str, str], ...], when: dt.datetime) -> dt.datetime:
    """The day to price a tier (Flex, Priority, Batch) on. genai-prices knows each tier's
    rate only from the day it was verified ("tier history before this verification is not
    modeled") and prices earlier days at the default rate, which OpenAI never billed Batch or
    Flex at: before that day, the tier's first known rate is the best estimate."""
    starts = [
        v.constraint.start_date
        for v in (_variants(model) if context else ())
        if all(v.when.get(k) == value for k, value in context)
        and getattr(v.constraint, "start_date", None) is not None
    ]
    first = min(starts, default=None)
    if first is None or when.date() >= first:
        return when
    return dt.datetime.combine(first, dt.time(), dt.UTC)


def _factor(schedule: Schedule | None, at: int) -> Decimal | None:
    """The factor a tier's schedule gives on ``at``'s UTC day (None: no schedule)."""
    if schedule is None:
        return None
    day = at - at % 86400
    return next((f for until, f in schedule if until is None or day <= until), schedule[-1][1])


def _override_price(price: Override, row: Mapping[str, Any], requests: int, at: int) -> Decimal:
    def n(field: str) -> int:
        return int(row.get(field) or 0)

    written = n("input_cache_write_tokens")
    written_12h = n("input_cache_write_12h_tokens")
    written_30m = written - written_12h  # the default time to live unless said otherwise
    cached = n("input_cached_tokens")
    plain = n("input_tokens") - cached - written
    write_rate = price.input if price.cache_write is None else price.cache_write
    write_12h_rate = write_rate if price.cache_write_12h is None else price.cache_write_12h
    input_side = (
        plain * price.input
        + cached * price.cached_input
        + written_30m * write_rate
        + written_12h * write_12h_rate
    )
    output_side = n("output_tokens") * price.output
    if price.long_context and n("input_tokens") / requests > price.long_context[0]:
        input_side *= price.long_context[1]
        output_side *= price.long_context[2]
    tiers = dict(price.tiers)
    factor = Decimal(1)
    if row.get("batch") in (True, "true"):
        factor *= _factor(tiers.get("batch"), at) or 1
    factor *= _factor(tiers.get(str(row.get("service_tier") or "")), at) or 1
    return (input_side + output_side) * factor / MILLION


def _shipped() -> tuple[dict[str, Override], dict[str, tuple[tuple[str, Schedule], ...]]]:
    """The additions shipped in ``data/prices.json``: models, and tier factors for models the
    library prices."""
    text = resources.files("usage_tracker").joinpath("data/prices.json").read_text()
    data = parse_json_object(text, "data/prices.json")
    tiers = {
        model: _tiers(raw, f"data/prices.json: tiers of {model!r}")
        for model, raw in (data.get("tiers") or {}).items()
    }
    return _overrides(data, "data/prices.json"), tiers


def _overrides(data: Mapping[str, Any], origin: str) -> dict[str, Override]:
    overrides = {}
    for model, raw in (data.get("models") or {}).items():
        try:
            overrides[str(model)] = _override(raw, f"{origin}: model {model!r}")
        except (KeyError, TypeError, ArithmeticError, AttributeError):
            raise PricesFileError(
                f'{origin}: model {model!r} needs "input" and "output" (USD per 1M tokens)'
            ) from None
    return overrides


def _override(raw: Mapping[str, Any], origin: str) -> Override:
    def money(key: str, default: Any = None) -> Decimal | None:
        value = raw.get(key, default)
        return None if value is None else Decimal(str(value))

    long = raw.get("long_context")
    return Override(
        Decimal(str(raw["input"])),
        Decimal(str(raw.get("cached_input", raw["input"]))),
        Decimal(str(raw["output"])),
        cache_write=money("cache_write"),
        cache_write_12h=money("cache_write_12h"),
        long_context=None
        if long is None
        else (
            int(long["above_input_tokens"]),
            Decimal(str(long.get("input", 1))),
            Decimal(str(long.get("output", 1))),
        ),
        tiers=_tiers({"batch": BATCH_FACTOR, **(raw.get("tiers") or {})}, origin),
    )


def _tiers(raw: Mapping[str, Any], origin: str) -> tuple[tuple[str, Schedule], ...]:
    out = []
    for tier, value in raw.items():
        entries = value if isinstance(value, list) else [{"factor": value}]
        schedule = []
        for entry in entries:
            try:
                until = entry.get("until")
                day = (
                    None
                    if until is None
                    else int(
                        dt.datetime.combine(
                            dt.date.fromisoformat(until), dt.time(), dt.UTC
                        ).timestamp()
                    )
                )
                schedule.append((day, Decimal(str(entry["factor"]))))
            except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
                raise PricesFileError(
                    f"{origin}: tier {tier!r} needs a factor, or a list of "
                    '{"until": "YYYY-MM-DD", "factor": …}'
                ) from None
        out.append((str(tier), tuple(schedule)))
    return tuple(out)


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
    """OpenAI's (else Anthropic's) entry for ``model`` in the library, or None when it has
    none. What ``calc_price`` looks up on every call (a regex match over the registry, the
    larger part of its time, and as long again for a model it does not know), done once per
    model."""
    for provider in ("openai", "anthropic"):  # the providers the tracker reads
        try:
            return get_snapshot().find_provider_model(model, None, provider, None)
        except LookupError:
            continue
    return None


_LINEAR: dict[tuple[str, str], tuple[Decimal, dict[str, Decimal]] | None] = {}


@lru_cache(maxsize=16384)
def _linear_price(
    model: str, when: dt.datetime, context: tuple[tuple[str, str], ...]
) -> tuple[Decimal, dict[str, Decimal]] | None:
    """(price of one request, price of each token of each usage key) when the model's price in
    force at ``when`` is linear (no long-context tiers): then n requests cost n times the
    first plus the tokens times the second, the very sum the library gives for n average
    requests, at a fraction of its time. None for a tiered price (or an unknown model): the
    library prices those itself. Kept per (model, day, context): resolving the price in force
    is most of the work, and a sync writes day after day."""
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

"""What the synthetic company's keys do in an hour: one maker per usage source, each drawing an
event with its counters and the cost lines OpenAI would bill for it at the prices below."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from usage_tracker.providers.openai.contract import CONTEXT_LEVELS, IMAGE_SIZES, IMAGE_SOURCES
from usage_tracker.providers.records import DIMENSIONS
from usage_tracker.simulator.company import CostLine, Dims, Event, SimKey
from usage_tracker.simulator.scale import base_model

if TYPE_CHECKING:
    from usage_tracker.simulator.org import Organization

# USD per 1M tokens (input, cached input, output); per-unit prices for the other sources.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-5": (1.25, 0.125, 10.0),
    "gpt-5-2025-08-07": (1.25, 0.125, 10.0),
    "gpt-5-mini": (0.25, 0.025, 2.0),
    "gpt-5-nano": (0.05, 0.005, 0.4),
    "gpt-5-pro": (15.0, 15.0, 120.0),
    "gpt-4.1": (2.0, 0.5, 8.0),
    "gpt-4.1-mini": (0.4, 0.1, 1.6),
    "gpt-4.1-nano": (0.1, 0.025, 0.4),
    "gpt-4o-2024-08-06": (2.5, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.6),
    "o3": (2.0, 0.5, 8.0),
    "o4-mini": (1.1, 0.275, 4.4),
    "o1-pro": (150.0, 150.0, 600.0),
    "codex-mini-latest": (1.5, 0.375, 6.0),
    "ft:gpt-4o-mini-2024-07-18:acme::Bx7kQ2": (0.3, 0.15, 1.2),
    "gpt-realtime": (4.0, 0.4, 16.0),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.13, 0.0),
    "omni-moderation-latest": (0.0, 0.0, 0.0),
}
TIER_PRICES: dict[str, dict[str, tuple[float, float, float]]] = {
    "flex": {
        "gpt-5": (0.625, 0.0625, 5.0),
        "gpt-5-2025-08-07": (0.625, 0.0625, 5.0),
        "gpt-5-mini": (0.125, 0.0125, 1.0),
        "gpt-5-nano": (0.025, 0.0025, 0.2),
        "o3": (1.0, 0.25, 4.0),
        "o4-mini": (0.55, 0.1375, 2.2),
    },
    "priority": {
        "gpt-5": (2.5, 0.25, 20.0),
        "gpt-5-2025-08-07": (2.5, 0.25, 20.0),
        "gpt-5-mini": (0.45, 0.045, 3.6),
        "gpt-4.1": (3.5, 0.875, 14.0),
        "gpt-4.1-mini": (0.7, 0.175, 2.8),
        "gpt-4.1-nano": (0.2, 0.05, 0.8),
        "gpt-4o-2024-08-06": (4.25, 2.125, 17.0),
        "gpt-4o-mini": (0.25, 0.125, 1.0),
        "o3": (3.5, 0.875, 14.0),
        "o4-mini": (2.0, 0.5, 8.0),
    },
}
"""OpenAI's Flex and Priority prices (USD per 1M tokens: input, cached input, output) for the
models that offer them; traffic of another model on those tiers is served (and billed) as
default."""
AUDIO_PRICES = {"gpt-realtime": (32.0, 64.0)}
"""Realtime models' audio tokens (input, output), billed apart from their text tokens."""
UNIT_PRICES = {
    "gpt-image-1": 0.04,
    "dall-e-3": 0.08,
    "tts-1": 0.000015,
    "gpt-4o-mini-tts": 0.000012,
    "whisper-1": 0.0001,
    "gpt-4o-transcribe": 0.0001,
    "web_search": 0.01,
    "file_search": 0.0025,
    "code_interpreter": 0.03,
    "vector_store_gb_day": 0.1,
}
CHAT_MODELS = tuple(m for m in PRICES if not m.startswith(("text-embedding", "omni-moderation")))
COMPLIMENTARY = frozenset(
    {
        "gpt-5",
        "gpt-5-2025-08-07",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
        "codex-mini-latest",
    }
)
"""Models whose traffic OpenAI may report as complimentary (``incentivized-tier``)."""
RATES = {
    "completions": 7.0,
    "embeddings": 2.0,
    "moderations": 1.0,
    "images": 0.5,
    "audio_speeches": 0.5,
    "audio_transcriptions": 0.5,
    "code_interpreter_sessions": 0.4,
    "file_search_calls": 0.8,
    "web_search_calls": 0.8,
}
"""Mean events per hour at peak, by source (vector_stores is one sample per project a day)."""
DECISIONS_RATE = 1.5


def micros(quantity: int | float, usd_per_unit: float) -> int:
    return round(quantity * usd_per_unit * 1_000_000)


def dims_of(**values: str | bool | None) -> Dims:
    return tuple(values.get(d) for d in DIMENSIONS)


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; means here are below 10, so the loop is short.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _people(key: SimKey) -> dict[str, str | bool | None]:
    return {"project_id": key.project_id, "user_id": key.user_id, "api_key_id": key.id}


def completion(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(key.models)
    requests = 1 + int(rng.expovariate(0.15))
    input_tokens = requests * int(rng.lognormvariate(8.0, 0.9))
    cached = int(input_tokens * rng.choice((0.0, 0.0, 0.3, 0.6)))
    cache_write = int((input_tokens - cached) * rng.choice((0.0, 0.0, 0.1)))
    uncached = input_tokens - cached - cache_write
    output = int(input_tokens * rng.uniform(0.05, 0.5))
    free = base_model(model) in COMPLIMENTARY
    batch = free and rng.random() < 0.1
    complimentary = free and not batch and rng.random() < 0.35
    tier = (
        "incentivized-tier"
        if complimentary
        else rng.choice(("default",) * 6 + ("flex", "priority"))
    )
    audio = model == "gpt-realtime"
    in_audio = uncached // 2 if audio else 0
    out_audio = output // 2 if audio else 0
    in_image = uncached // 10 if model == "gpt-4.1" else 0
    # Cache writes by time to live, drawn from the minute (not the generator: the rest of the
    # organization stays as it was before these fields existed).
    ttl = (ts // 60) % 3
    write_30m = cache_write if ttl == 1 else 0
    write_12h = cache_write if ttl == 2 else 0
    metrics = {
        "input_tokens": input_tokens,
        "input_cached_tokens": cached,
        "input_cache_write_tokens": cache_write,
        "input_cache_write_30m_tokens": write_30m,
        "input_cache_write_12h_tokens": write_12h,
        "input_uncached_tokens": uncached,
        "output_tokens": output,
        "input_text_tokens": uncached - in_audio - in_image,
        "output_text_tokens": output - out_audio,
        "input_cached_text_tokens": cached,
        "input_audio_tokens": in_audio,
        "input_cached_audio_tokens": 0,
        "output_audio_tokens": out_audio,
        "input_image_tokens": in_image,
        "input_cached_image_tokens": 0,
        "output_image_tokens": 0,
        "num_model_requests": requests,
    }
    if batch or (tier in TIER_PRICES and base_model(model) not in TIER_PRICES[tier]):
        # The Batch API has no service tier of its own choosing, and OpenAI offers Flex and
        # Priority for some models only: those requests are served (and billed) as default.
        tier = "default"
    costs = _completion_costs(model, tier, batch, metrics)
    dims = dims_of(
        **_people(key), model=model, batch=batch, service_tier=tier, api_source=_api_source(key)
    )
    return Event("completions", ts, dims, tuple(metrics.items()), costs, complimentary)


def _completion_costs(
    model: str, tier: str, batch: bool, metrics: dict[str, int]
) -> tuple[CostLine, ...]:
    """The line items OpenAI bills a completion with: at the tier's prices (Batch at half),
    audio tokens of realtime models at their own rates, each modality its own line item."""
    base = base_model(model)
    p_in, p_cached, p_out = TIER_PRICES.get(tier, {}).get(base) or PRICES[base]
    discount = 0.5 if batch else 1.0
    uncached = metrics["input_uncached_tokens"] + metrics["input_cache_write_tokens"]
    cached, output = metrics["input_cached_tokens"], metrics["output_tokens"]

    def line(item: str, tokens: int, usd_per_million: float) -> CostLine:
        return CostLine(item, micros(tokens / 1e6, usd_per_million * discount), tokens, "tokens")

    if base in AUDIO_PRICES:
        a_in, a_out = AUDIO_PRICES[base]
        audio_in, audio_out = metrics["input_audio_tokens"], metrics["output_audio_tokens"]
        item = f"realtime api | {model}"
        return (
            line(f"{item}, text, input", uncached - audio_in, p_in),
            line(f"{item}, audio, input", audio_in, a_in),
            line(f"{item}, text, cached input", cached, p_cached),
            line(f"{item}, text, output", output - audio_out, p_out),
            line(f"{item}, audio, output", audio_out, a_out),
        )
    # Fine-tuned models are billed as "ft-…" where usage says "ft:…".
    item = "ft-" + model.removeprefix("ft:") if model.startswith("ft:") else model
    return (
        line(f"{item}, input", uncached, p_in),
        line(f"{item}, cached input", cached, p_cached),
        line(f"{item}, output", output, p_out),
    )


AGENT_KEYS = frozenset({"ingest-service", "ci-bot"})
"""Keys whose traffic OpenAI attributes to the Agents API (``api_source``)."""


def _api_source(key: SimKey) -> str:
    return "agents_api" if key.name in AGENT_KEYS else "unlabeled"


def decision(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    """Decisions API usage: shaped as completions (the same fields), never complimentary."""
    event = completion(org, rng, key, ts)
    tier = event.dims[DIMENSIONS.index("service_tier")]
    dims = dims_of(
        **_people(key),
        model=event.dims[DIMENSIONS.index("model")],
        batch=event.dims[DIMENSIONS.index("batch")],
        service_tier="default" if tier == "incentivized-tier" else tier,
        api_source=_api_source(key),
    )
    return Event("decisions", ts, dims, event.metrics, event.costs)


def _token_event(source: str, models: tuple[str, ...]) -> Callable[..., Event]:
    def make(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
        model = rng.choice(models)
        requests = 1 + int(rng.expovariate(0.3))
        tokens = requests * int(rng.lognormvariate(6.0, 1.0))
        cost = CostLine(f"{model}, input", micros(tokens / 1e6, PRICES[model][0]), tokens, "tokens")
        metrics = (("input_tokens", tokens), ("num_model_requests", requests))
        return Event(source, ts, dims_of(**_people(key), model=model), metrics, (cost,))

    return make


def _image(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(("gpt-image-1", "dall-e-3"))
    requests = 1 + int(rng.expovariate(0.8))
    images = requests * rng.randint(1, 4)
    cost = CostLine(f"{model}, images", micros(images, UNIT_PRICES[model]), images, "images")
    dims = dims_of(
        **_people(key), model=model, size=rng.choice(IMAGE_SIZES), source=rng.choice(IMAGE_SOURCES)
    )
    metrics = (("images", images), ("num_model_requests", requests))
    return Event("images", ts, dims, metrics, (cost,))


def _audio(
    source: str, counter: str, models: tuple[str, ...], lo: int, hi: int
) -> Callable[..., Event]:
    def make(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
        model = rng.choice(models)
        requests = 1 + int(rng.expovariate(0.5))
        amount = requests * rng.randint(lo, hi)
        unit = "characters" if counter == "characters" else "duration_seconds"
        cost = CostLine(f"{model}, {counter}", micros(amount, UNIT_PRICES[model]), amount, unit)
        metrics = ((counter, amount), ("num_model_requests", requests))
        return Event(source, ts, dims_of(**_people(key), model=model), metrics, (cost,))

    return make


def _code_interpreter(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    sessions = rng.randint(1, 5)
    cost = CostLine(
        "code interpreter sessions",
        micros(sessions, UNIT_PRICES["code_interpreter"]),
        sessions,
        "",
    )
    return Event(
        "code_interpreter_sessions",
        ts,
        dims_of(project_id=key.project_id),
        (("num_sessions", sessions),),
        (cost,),
    )


def _file_search(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    calls = rng.randint(1, 20)
    store = rng.choice(org.projects[key.project_id].vector_stores)
    cost = CostLine("file search tool calls", micros(calls, UNIT_PRICES["file_search"]), calls, "")
    dims = dims_of(**_people(key), vector_store_id=store)
    return Event("file_search_calls", ts, dims, (("num_requests", calls),), (cost,))


def _web_search(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(key.models)
    requests = rng.randint(1, 8)
    calls = requests * rng.randint(1, 3)
    cost = CostLine("web search tool calls", micros(calls, UNIT_PRICES["web_search"]), calls, "")
    dims = dims_of(
        **_people(key),
        model=model,
        context_level=rng.choice(CONTEXT_LEVELS),
        api_source=_api_source(key),
    )
    metrics = (("num_model_requests", requests), ("num_requests", calls))
    return Event("web_search_calls", ts, dims, metrics, (cost,))


MAKERS: dict[str, Callable[[Organization, random.Random, SimKey, int], Event]] = {
    "completions": completion,
    "embeddings": _token_event("embeddings", ("text-embedding-3-small", "text-embedding-3-large")),
    "moderations": _token_event("moderations", ("omni-moderation-latest",)),
    "images": _image,
    "audio_speeches": _audio(
        "audio_speeches", "characters", ("tts-1", "gpt-4o-mini-tts"), 200, 5000
    ),
    "audio_transcriptions": _audio(
        "audio_transcriptions", "seconds", ("whisper-1", "gpt-4o-transcribe"), 10, 600
    ),
    "code_interpreter_sessions": _code_interpreter,
    "file_search_calls": _file_search,
    "web_search_calls": _web_search,
}

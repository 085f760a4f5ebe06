"""The typed records every provider's client hands to the rest of the program, and the fields
they carry: the dimensions usage is grouped by and the counters it counts. The names are
OpenAI's (the first provider); another provider's client maps its figures onto them (an
Anthropic workspace is a ``project_id``) and leaves out what it lacks, never a made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

DIMENSIONS: Final = (
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
    "size",
    "source",
    "vector_store_id",
    "context_level",
    "api_source",
)
"""Every field a usage result can be grouped by, across all sources."""
TOKEN_METRICS = (
    "input_tokens",
    "output_tokens",
    "input_cached_tokens",
    "input_uncached_tokens",
    "input_cache_write_tokens",
    "input_cache_write_30m_tokens",
    "input_cache_write_12h_tokens",
    "input_text_tokens",
    "output_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_image_tokens",
    "num_model_requests",
)
"""The counters of the token sources (completions, decisions)."""

METRICS: Final = (
    *TOKEN_METRICS,
    "images",
    "characters",
    "seconds",
    "usage_bytes",
    "num_sessions",
    "num_requests",
)
"""Every integer counter a usage result can carry, across all sources."""


Dimensions = tuple[str | bool | None, ...]
"""Values of :data:`DIMENSIONS`, in that order."""


@dataclass(frozen=True, slots=True)
class UsageResult:
    """One grouped row of one usage bucket."""

    source: str
    start_time: int
    end_time: int
    dimensions: Dimensions
    metrics: Mapping[str, int]

    def dimension(self, name: str) -> str | bool | None:
        return self.dimensions[DIMENSIONS.index(name)]

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens. ``input_tokens`` already includes the cached and cache-write
        tokens, so those are never added a second time."""
        return self.metrics.get("input_tokens", 0) + self.metrics.get("output_tokens", 0)


@dataclass(frozen=True, slots=True)
class UsageBucket:
    start_time: int
    end_time: int
    results: tuple[UsageResult, ...]


@dataclass(frozen=True, slots=True)
class CostResult:
    start_time: int
    end_time: int
    project_id: str | None
    line_item: str | None
    api_key_id: str | None
    amount: Decimal
    currency: str
    quantity: Decimal | None
    quantity_unit: str | None


@dataclass(frozen=True, slots=True)
class CostBucket:
    start_time: int
    end_time: int
    results: tuple[CostResult, ...]


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str | None
    created_at: int | None
    archived_at: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    project_id: str
    name: str | None
    redacted_value: str | None
    created_at: int | None
    last_used_at: int | None
    owner_type: str | None
    owner_id: str | None
    owner_name: str | None
    owner_email: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str | None
    email: str | None
    role: str | None


ANTHROPIC_SOURCES: Final = ("messages",)
"""Anthropic's usage, stored as one source (OpenAI's are ``openai.contract.SOURCES``)."""

LIMIT_KINDS: Final = ("spend_limit", "spend_alert", "rate_limit", "key_status")
"""What a provider lets an organization cap or watch: a hard spend limit (requests stop when it
is spent), a spend alert (an e-mail at a threshold), a rate limit (per model), and a key's
status where the provider reports it (Anthropic: ``enforcing`` while the key is inactive)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit as the provider reports it. ``project_id`` is None for the organization's
    own; ``ident`` tells apart several of one kind on one subject (an alert's id, a rate
    limit's model)."""

    kind: str
    project_id: str | None
    ident: str
    amount_usd: Decimal | None = None
    """A spend limit's or alert's threshold (the providers send cents)."""
    interval: str | None = None
    enforcing: bool | None = None
    """A hard spend limit: whether it is stopping requests now."""
    model: str | None = None
    figures: Mapping[str, int] | None = None
    """A rate limit's maxima (``max_requests_per_1_minute``, ``max_tokens_per_1_minute``…)."""

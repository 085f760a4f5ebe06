"""What OpenAI's Usage and Costs endpoints accept and return, as data.

Taken from the published contract (trimmed copy in ``tests/upstream/``); a test checks this
table against that file so the client and the simulator cannot drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from usage_tracker.providers.records import TOKEN_METRICS

WIDTH_SECONDS: Final = {"1m": 60, "1h": 3600, "1d": 86400}
"""Seconds in each bucket width the usage endpoints accept."""

DEFAULT_LIMIT: Final = {"1m": 60, "1h": 24, "1d": 7}
MAX_LIMIT: Final = {"1m": 1440, "1h": 168, "1d": 31}
"""`limit` counts buckets; the maximum depends on the bucket width."""

COSTS_DEFAULT_LIMIT: Final = 7
COSTS_MAX_LIMIT: Final = 180

LATER_DIMENSIONS: Final = ("api_source",)
"""Dimensions the API gained after its first release, newest last: an API that refuses a
``group_by`` without saying which value is taken to refuse the newest of these."""


@dataclass(frozen=True, slots=True)
class Source:
    """One usage endpoint: its path, result object type, groupable fields, counters and filters."""

    name: str
    object: str
    group_by: tuple[str, ...]
    metrics: tuple[str, ...]
    filters: dict[str, str]
    """query parameter -> the dimension it filters on"""

    @property
    def path(self) -> str:
        return f"/organization/usage/{self.name}"


_PEOPLE = {"project_ids": "project_id", "user_ids": "user_id", "api_key_ids": "api_key_id"}
_MODEL_FILTERS = {**_PEOPLE, "models": "model"}
_TOKEN_GROUPS = (
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
    "api_source",
)

SOURCES: Final = {
    s.name: s
    for s in (
        Source(
            "completions",
            "organization.usage.completions.result",
            _TOKEN_GROUPS,
            TOKEN_METRICS,
            {**_MODEL_FILTERS, "batch": "batch"},
        ),
        Source(
            # The Decisions API's model usage: the same fields as completions (SDK 3.57).
            "decisions",
            "organization.usage.decisions.result",
            _TOKEN_GROUPS,
            TOKEN_METRICS,
            {**_MODEL_FILTERS, "batch": "batch"},
        ),
        Source(
            "embeddings",
            "organization.usage.embeddings.result",
            ("project_id", "user_id", "api_key_id", "model"),
            ("input_tokens", "num_model_requests"),
            _MODEL_FILTERS,
        ),
        Source(
            "moderations",
            "organization.usage.moderations.result",
            ("project_id", "user_id", "api_key_id", "model"),
            ("input_tokens", "num_model_requests"),
            _MODEL_FILTERS,
        ),
        Source(
            "images",
            "organization.usage.images.result",
            ("project_id", "user_id", "api_key_id", "model", "size", "source"),
            ("images", "num_model_requests"),
            {**_MODEL_FILTERS, "sources": "source", "sizes": "size"},
        ),
        Source(
            "audio_speeches",
            "organization.usage.audio_speeches.result",
            ("project_id", "user_id", "api_key_id", "model"),
            ("characters", "num_model_requests"),
            _MODEL_FILTERS,
        ),
        Source(
            "audio_transcriptions",
            "organization.usage.audio_transcriptions.result",
            ("project_id", "user_id", "api_key_id", "model"),
            ("seconds", "num_model_requests"),
            _MODEL_FILTERS,
        ),
        Source(
            "vector_stores",
            "organization.usage.vector_stores.result",
            ("project_id",),
            ("usage_bytes",),
            {"project_ids": "project_id"},
        ),
        Source(
            "code_interpreter_sessions",
            "organization.usage.code_interpreter_sessions.result",
            ("project_id",),
            ("num_sessions",),
            {"project_ids": "project_id"},
        ),
        Source(
            "file_search_calls",
            # The contract names the object after "file_searches", not the path.
            "organization.usage.file_searches.result",
            ("project_id", "user_id", "api_key_id", "vector_store_id"),
            ("num_requests",),
            {**_PEOPLE, "vector_store_ids": "vector_store_id"},
        ),
        Source(
            "web_search_calls",
            "organization.usage.web_searches.result",
            ("project_id", "user_id", "api_key_id", "model", "context_level", "api_source"),
            ("num_model_requests", "num_requests"),
            {**_MODEL_FILTERS, "context_levels": "context_level"},
        ),
    )
}

COSTS_OBJECT: Final = "organization.costs.result"
COSTS_GROUP_BY: Final = ("project_id", "line_item", "api_key_id")
COSTS_FILTERS: Final = {"project_ids": "project_id", "api_key_ids": "api_key_id"}

IMAGE_SOURCES: Final = ("image.generation", "image.edit", "image.variation")
IMAGE_SIZES: Final = ("256x256", "512x512", "1024x1024", "1792x1792", "1024x1792")
CONTEXT_LEVELS: Final = ("low", "medium", "high")


def align_down(ts: int, width: str) -> int:
    """The start of the UTC bucket of ``width`` that holds ``ts``."""
    step = WIDTH_SECONDS[width]
    return ts - ts % step


def align_up(ts: int, width: str) -> int:
    """The first UTC bucket boundary of ``width`` at or after ``ts``."""
    return -(-ts // WIDTH_SECONDS[width]) * WIDTH_SECONDS[width]


def buckets_stop(start: int, end: int | None, step: int, now: int) -> int:
    """Where the buckets of a request end: they run from ``start`` in ``step``s, none starting
    after the one that holds ``now``, and none past ``end`` (exclusive) when it is given."""
    stop = start + ((now - start) // step + 1) * step if now >= start else start
    return stop if end is None else min(stop, end)

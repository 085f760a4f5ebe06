"""The providers the tracker reads, each behind one small interface (:class:`ProviderClient`):
what sources it has, how to read their pages and the names of keys, users and projects, as the
common records of :mod:`usage_tracker.providers.records`. OpenAI's client is
:class:`usage_tracker.providers.openai.AdminClient`; Anthropic's is :mod:`.anthropic`'s."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from usage_tracker.providers.records import (
        ApiKey,
        CostBucket,
        Limit,
        Project,
        UsageBucket,
        User,
    )


class ProviderClient(Protocol):
    """What the sync needs of a provider's client."""

    provider: str
    sources: tuple[str, ...]
    """The usage sources, then ``costs``."""
    requests: Counter[str]
    new_fields: dict[str, set[str]]
    trouble: str | None
    on_trouble: Callable[[str | None], object] | None

    def usage_pages(
        self,
        source: str,
        start_time: int,
        end_time: int,
        *,
        bucket_width: str = "1h",
        group_by: Sequence[str] | None = None,
    ) -> Iterator[tuple[list[UsageBucket], str | None]]: ...

    def cost_pages(self, start_time: int, end_time: int) -> Iterator[list[CostBucket]]: ...

    def projects(self) -> list[Project]: ...

    def api_keys(self, project_id: str) -> list[ApiKey]: ...

    def users(self) -> list[User]: ...

    def limits(self, project_ids: Sequence[str]) -> list[Limit]:
        """The spend limits, spend alerts and rate limits of the organization and of
        ``project_ids`` (an empty list where the provider reports none through its API)."""
        ...

    def close(self) -> None: ...

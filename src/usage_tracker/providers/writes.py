"""What the tracker may change at a provider, with a connection's separate write key: a key
paused (made read-only at OpenAI, inactive at Anthropic) and given back exactly what it had, and
a project's hard spend limit written and restored. Never a deletion, never an archive.

Each writer reads the state it is about to change first, so that an undo writes it back."""

from __future__ import annotations

from typing import Any, Protocol


class Writer(Protocol):
    """One connection's writes. Each method raises only
    :class:`~usage_tracker.providers.errors.UpstreamError` subclasses."""

    provider: str

    def key_state(self, project_id: str, key_id: str) -> dict[str, Any]:
        """What pausing the key changes, as it is now (to be written back on resume)."""
        ...

    def pause_key(self, project_id: str, key_id: str) -> None: ...

    def restore_key(self, project_id: str, key_id: str, state: dict[str, Any]) -> None: ...

    def project_limit(self, project_id: str) -> int | None:
        """The project's hard monthly spend limit in cents (None: not set)."""
        ...

    def set_project_limit(self, project_id: str, cents: int | None) -> None:
        """Write the hard limit (None: remove it)."""
        ...

    def close(self) -> None: ...

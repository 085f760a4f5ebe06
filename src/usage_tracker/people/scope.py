"""The usage a request may read: every key, or only some (a member's own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """The usage a principal may read: every key (``keys`` is None) or only these keys."""

    keys: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.keys is None

    def where(self) -> dict[str, list[str]] | None:
        """A filter for the store's usage queries (None: no filter)."""
        if self.keys is None:
            return None
        return {"api_key_id": sorted(self.keys) or ["(none)"]}

    def narrow(self, where: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]] | None:
        """``where`` limited to this scope's keys as well."""
        mine = self.where()
        if mine is None:
            return None if where is None else {k: list(v) for k, v in where.items()}
        merged = {k: list(v) for k, v in (where or {}).items()}
        keys = mine["api_key_id"]
        if "api_key_id" in merged:
            keys = [k for k in merged["api_key_id"] if k in set(keys)] or ["(none)"]
        merged["api_key_id"] = keys
        return merged

    def allows(self, key_id: str | None) -> bool:
        return self.keys is None or (key_id or "") in self.keys


EVERYTHING = Scope()

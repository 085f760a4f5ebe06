"""Anthropic's writes (the pinned SDK's ``beta.organization.api_keys.update``): a key set
``inactive`` and back to the status it had. A workspace's spend limit is not written by this
version (Anthropic's spend-limit endpoints are for Enterprise organizations)."""

from __future__ import annotations

from typing import Any

import anthropic

from usage_tracker.providers.errors import UpstreamError, WriteRefusedError

from .client import AnthropicClient


class AnthropicWriter(AnthropicClient):
    """The writes of one Anthropic organization, with its write key."""

    def key_state(self, project_id: str, key_id: str) -> dict[str, Any]:
        del project_id
        keys = self._sdk.beta.organization.api_keys
        found = self._write_call("api_keys", lambda: keys.retrieve(key_id))
        return {"status": str(found.status)}

    def pause_key(self, project_id: str, key_id: str) -> None:
        self._set_status(key_id, "inactive")

    def restore_key(self, project_id: str, key_id: str, state: dict[str, Any]) -> None:
        self._set_status(key_id, state["status"])

    def _set_status(self, key_id: str, status: str) -> None:
        keys = self._sdk.beta.organization.api_keys
        self._write_call("key_update", lambda: keys.update(key_id, status=status))  # type: ignore[arg-type]

    def project_limit(self, project_id: str) -> int | None:
        raise UpstreamError(
            "a workspace's spend limit is not written by this version (Anthropic's spend-limit "
            "endpoints are for Enterprise organizations); use pause_keys for Anthropic"
        )

    def set_project_limit(self, project_id: str, cents: int | None) -> None:
        self.project_limit(project_id)

    def _write_call(self, label: str, call: Any) -> Any:
        try:
            return self._call(label, lambda: _refused_is_refused(call))
        except _Refused as e:
            raise self._failed(WriteRefusedError(e.status_code)) from None


class _Refused(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


def _refused_is_refused(call: Any) -> Any:
    """A 403 on a write is the write key's missing permission, not a bad read key."""
    try:
        return call()
    except anthropic.PermissionDeniedError as e:
        raise _Refused(e.status_code) from None

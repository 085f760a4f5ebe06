"""OpenAI's writes (the pinned SDK's ``admin.organization``): a project key's scopes and a
project's hard spend limit.

OpenAI's key object does not carry its scopes. What a key has is read from the audit log: the
newest ``api_key.updated`` event that set its scopes, else its ``api_key.created`` event. When
the audit log holds neither (audit logging was off when the key was made), the key is not
paused: resume could not give it back exactly what it had.
"""

from __future__ import annotations

from typing import Any

import openai

from usage_tracker.providers.errors import (
    BadUpstreamResponseError,
    PreviousStateUnknownError,
    UpstreamError,
    WriteRefusedError,
)

from .client import AdminClient, _error_message

READ_ONLY = ["api.all.read"]
KEY_EVENTS = ["api_key.updated", "api_key.created"]


class OpenAIWriter(AdminClient):
    """The writes of one OpenAI organization, with its write key."""

    def key_state(self, project_id: str, key_id: str) -> dict[str, Any]:
        del project_id
        logs = self._sdk.admin.organization.audit_logs.list
        for event in self._listed(
            "audit_logs", logs, resource_ids=[key_id], event_types=KEY_EVENTS
        ):
            kind = event.get("type")
            details = event.get(kind) if isinstance(kind, str) else None
            if not isinstance(details, dict) or details.get("id") != key_id:
                continue
            if kind == "api_key.updated":
                scopes = (details.get("changes_requested") or {}).get("scopes")
                if scopes is None:
                    continue  # an expiry change: look further back
            else:
                scopes = (details.get("data") or {}).get("scopes") or []
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise BadUpstreamResponseError(f"audit log: the scopes of {key_id} are not a list")
            return {"scopes": scopes}
        raise PreviousStateUnknownError(
            f"the scopes of key {key_id} cannot be read: OpenAI's audit log holds neither its "
            "creation nor a change of its scopes (audit logging must be on in the "
            "organization's settings); it was not paused"
        )

    def pause_key(self, project_id: str, key_id: str) -> None:
        self._write(project_id, key_id, READ_ONLY)

    def restore_key(self, project_id: str, key_id: str, state: dict[str, Any]) -> None:
        self._write(project_id, key_id, list(state["scopes"]))

    def _write(self, project_id: str, key_id: str, scopes: list[str]) -> None:
        keys = self._sdk.admin.organization.projects.api_keys
        self._call("key_update", keys.update, key_id, project_id=project_id, scopes=scopes)

    def project_limit(self, project_id: str) -> int | None:
        found = self._spend_limit(
            project_id, self._sdk.admin.organization.projects.spend_limit.retrieve, project_id
        )
        if not found or found[0].amount_usd is None:
            return None
        return int(found[0].amount_usd * 100)

    def set_project_limit(self, project_id: str, cents: int | None) -> None:
        limit = self._sdk.admin.organization.projects.spend_limit
        if cents is None:
            self._call("spend_limit_update", limit.delete, project_id)
            return
        self._call(
            "spend_limit_update",
            limit.update,
            project_id,
            currency="USD",
            interval="month",
            threshold_amount=cents,
        )

    def _translate_status(self, e: openai.APIStatusError) -> UpstreamError:
        if e.status_code == 403 or "missing scopes" in _error_message(e.body).lower():
            return WriteRefusedError(e.status_code)
        return super()._translate_status(e)

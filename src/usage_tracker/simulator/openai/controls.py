"""What an admin with a write key can change in the simulated OpenAI organization, by the
contract of the pinned SDK's ``admin.organization``: a project key's scopes
(``projects.api_keys.update``), a project's hard spend limit (``projects.spend_limit.update``
and ``delete``), and the audit log that remembers each key's scopes (``audit_logs.list``:
OpenAI's key object does not carry its scopes; the ``api_key.created`` and ``api_key.updated``
events do).

A key whose scopes are all read scopes (``["api.all.read"]``) makes no more usage from the
moment it is changed; given its scopes back, it makes usage again. A hard limit written here is
enforced (see ``simulator/stops.py``).
"""

from __future__ import annotations

from typing import Any

from usage_tracker.simulator.company import SimKey
from usage_tracker.simulator.http import ApiError, Query
from usage_tracker.simulator.openai.paging import list_page
from usage_tracker.simulator.org import Organization

RESTRICTED = ("api.model.read", "api.model.request", "api.files.write")
"""The scopes some keys were created with (the others: all permissions, ``[]``)."""
ACTOR = {
    "type": "session",
    "session": {"user": {"id": "user-admin", "email": "admin@example.com"}},
}


def initial_scopes(index: int) -> list[str]:
    """Every third key was created restricted; the rest with all permissions."""
    return list(RESTRICTED) if index % 3 == 1 else []


def read_only(scopes: list[str]) -> bool:
    return bool(scopes) and all(s.endswith(".read") for s in scopes)


class Controls:
    """The keys' scopes now and the audit log of their changes."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.scopes: dict[str, list[str]] = {
            k.id: initial_scopes(i) for i, k in enumerate(org.keys)
        }
        self.unaudited: set[str] = set()
        """Keys whose creation the audit log does not hold (created before it was turned on)."""
        self._updates: list[dict[str, Any]] = []

    def update_key(self, key: SimKey, body: dict[str, Any]) -> None:
        scopes = body.get("scopes")
        expires = body.get("expires_in_seconds")
        if scopes is None and expires is None:
            raise ApiError(400, "Provide at least one of 'scopes' or 'expires_in_seconds'.")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ApiError(400, "Invalid value for 'scopes': expected strings.", "scopes")
            now = self.org.now
            self.scopes[key.id] = list(scopes)
            if read_only(scopes):
                self.org.stops.block(key.id, now)
            else:
                self.org.stops.unblock(key.id, now)
            self._updates.append(
                {
                    "id": f"audit_log-upd{len(self._updates):05d}",
                    "type": "api_key.updated",
                    "effective_at": now,
                    "actor": ACTOR,
                    "api_key.updated": {"id": key.id, "changes_requested": {"scopes": scopes}},
                }
            )

    def audit_logs(self, query: Query) -> dict[str, Any]:
        types = set(query.array("event_types"))
        resources = set(query.array("resource_ids"))
        gte = query.integer("effective_at[gte]")
        lte = query.integer("effective_at[lte]")
        now = self.org.now
        events = [*self._created(now), *self._updates]
        events = [
            e
            for e in events
            if (not types or e["type"] in types)
            and (not resources or e[e["type"]]["id"] in resources)
            and (gte is None or e["effective_at"] >= gte)
            and (lte is None or e["effective_at"] <= lte)
        ]
        events.sort(key=lambda e: (-e["effective_at"], e["id"]))  # newest first, as OpenAI
        return list_page(query, events)

    def _created(self, now: int) -> list[dict[str, Any]]:
        return [
            {
                "id": f"audit_log-new{i:05d}",
                "type": "api_key.created",
                "effective_at": k.created_at,
                "actor": ACTOR,
                "api_key.created": {"id": k.id, "data": {"scopes": initial_scopes(i)}},
            }
            for i, k in enumerate(self.org.keys)
            if k.created_at <= now and k.id not in self.unaudited
        ]

    def write_limit(self, project_id: str, body: dict[str, Any] | None) -> None:
        """A hard limit in cents, or none (``body`` None: deleted)."""
        cents = None
        if body is not None:
            if body.get("currency") != "USD" or body.get("interval") != "month":
                raise ApiError(400, "Only currency USD and interval month are supported.")
            cents = body.get("threshold_amount")
            if not isinstance(cents, int) or isinstance(cents, bool) or cents < 0:
                raise ApiError(
                    400, "Invalid value for 'threshold_amount': expected cents.", "threshold_amount"
                )
        self.org.stops.set_limit(project_id, self.org.now, cents)

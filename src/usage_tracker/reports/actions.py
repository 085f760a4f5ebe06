"""The actions as people see them: every one for admins and viewers, and for a member those
that changed one of their own keys (what was done, why, when, and whom to ask)."""

from __future__ import annotations

from typing import Any

from usage_tracker.people.scope import Scope
from usage_tracker.store import Store
from usage_tracker.store import actions as rows

WORDS = {
    "pause_keys": "pause the keys",
    "project_limit": "set the project's hard spend limit",
}
"""What each kind of action does, in words (pages, notices, the CLI)."""
RULE_ACTORS = ("rule", "rule (mode: auto)")


def actions(store: Store, scope: Scope, limit: int = 200) -> list[dict[str, Any]]:
    """The newest actions first, of the ``scope``'s keys only unless it is everything."""
    with store.transaction() as conn:
        found = rows.listing(conn, limit)
    shown = []
    for action in found:
        keys = [t["key_id"] for t in action["targets"] if "key_id" in t]
        if not scope.everything and not any(scope.allows(k) for k in keys):
            continue
        previous = action["previous"]
        targets = [
            {
                **t,
                "changed": bool(
                    previous.get(t.get("key_id") or t["project_id"], {}).get("applied")
                ),
                "skipped": previous.get(t.get("key_id") or t["project_id"], {}).get("skipped"),
            }
            for t in action["targets"]
            if scope.everything or scope.allows(t.get("key_id"))
        ]
        decided = action["decided_by"]
        shown.append(
            {
                "id": action["id"],
                "state": action["state"],
                "kind": action["kind"],
                "what": WORDS[action["kind"]],
                "mode": action["mode"],
                "connection": action["connection"],
                "rule": action["rule"],
                "subject": action["subject"],
                "subject_words": action["subject"].replace(":", " ", 1),
                "period": action["period"],
                "reason": action["reason"],
                "targets": targets,
                "created_at": action["created_at"],
                "decided_by": decided,
                "decided_at": action["decided_at"],
                "done_at": action["done_at"],
                "resumed_by": action["resumed_by"],
                "resumed_at": action["resumed_at"],
                "attempts": action["attempts"],
                "next_attempt_at": action["next_attempt_at"]
                if action["state"] in rows.PENDING
                else None,
                "last_error": action["last_error"],
                "ask": decided
                if decided and decided not in RULE_ACTORS
                else "an admin of this tracker",
                "resumable": action["state"] in (rows.DONE, rows.FAILED)
                and any(t["changed"] for t in targets),
            }
        )
    return shown

"""Who is who: each person with their keys and totals (the People page)."""

from __future__ import annotations

from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.people.scope import EVERYTHING, Scope
from usage_tracker.store import Store


def people(
    store: Store, names: Names, start: int, end: int, *, scope: Scope = EVERYTHING
) -> list[dict[str, Any]]:
    """Each person with their email, their keys (project, last use, tokens) and their totals
    over [start, end), biggest first; only the ``scope``'s keys."""
    usage = {
        r["api_key_id"]: r
        for r in store.usage_totals(
            start,
            end,
            ["api_key_id"],
            metrics=["input_tokens", "output_tokens", "num_model_requests"],
            where=scope.where(),
        )
    }
    key_ids = (set(names.keys) | set(usage)) - {""}
    found: dict[str, dict[str, Any]] = {}
    for key_id in sorted(k for k in key_ids if scope.allows(k)):
        person = names.person(key_id)
        entry = found.setdefault(
            person, {"person": person, "email": None, "keys": [], "tokens": 0, "requests": 0}
        )
        entry["email"] = entry["email"] or names.email(key_id)
        row, key = usage.get(key_id, {}), names.keys.get(key_id, {})
        tokens = row.get("input_tokens", 0) + row.get("output_tokens", 0)
        entry["keys"].append(
            {
                "id": key_id,
                "name": names.key(key_id),
                "project": names.project(str(key.get("project_id") or "")),
                "connection": key.get("connection"),
                "last_used_at": key.get("last_used_at"),
                "tokens": tokens,
                "assigned": key_id in names.owners,
            }
        )
        entry["tokens"] += tokens
        entry["requests"] += row.get("num_model_requests", 0)
    for entry in found.values():
        entry["keys"].sort(key=lambda k: -k["tokens"])
    return sorted(found.values(), key=lambda p: (-p["tokens"], p["person"]))

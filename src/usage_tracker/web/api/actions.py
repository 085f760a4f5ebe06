"""``/api/actions``: what budget rules asked to be done at a provider, and what became of it
(everyone signed in: a member sees only the actions that changed one of their keys)."""

from __future__ import annotations

from typing import Any

from usage_tracker.reports.actions import actions
from usage_tracker.web.api.common import State, router
from usage_tracker.web.auth import Access, Viewer
from usage_tracker.web.state import AppState


def actions_report(state: AppState, access: Access) -> dict[str, Any]:
    engine = state.actions
    staff = access.who.is_staff
    return {
        "actions": actions(state.store, access.scope),
        "write_keys": sorted(engine.writers) if engine is not None and staff else None,
        "rules_act": bool(engine is not None and staff and engine.enabled),
        "problem": engine.health()["problem"] if engine is not None and staff else None,
    }


@router.get("/actions", summary="Actions of budget rules: proposed, done, failed, resumed")
def actions_route(state: State, access: Viewer) -> dict[str, Any]:
    """Each action, newest first: its ``state`` (proposed, approved, done, failed, dismissed,
    resuming, resumed), why (``reason``), its ``targets`` (keys or a project, each ``changed``
    or ``skipped`` with why), who decided and resumed it and when, and ``last_error`` while a
    write is being retried. ``write_keys``: the connections that may be written to (admins
    and viewers)."""
    return actions_report(state, access)

"""``/api/limits``: the spend limits, spend alerts and rate limits each connection's provider
reports, each beside what its subject has spent this UTC month (admins and viewers)."""

from __future__ import annotations

from typing import Any

from usage_tracker.reports.limits import limits
from usage_tracker.web.api.common import HOUR, State, router
from usage_tracker.web.auth import Access, Staff
from usage_tracker.web.state import AppState


def limits_report(state: AppState, access: Access, now: int) -> dict[str, Any]:
    """The limits report with each connection's read time and failure, cached per version of
    the data and hour."""
    report = state.results.get(
        ("limits", access.version, now - now % HOUR),
        lambda: limits(state.store, access.names, now),
    )
    connections = [
        {
            "name": r["name"],
            "provider": r["provider"],
            "read_at": r["limits_read_at"],
            "error": r["limits_error"],
            "reported": r["provider"] == "openai",
        }
        for r in sorted(state.store.connection_rows(), key=lambda r: r["name"])
    ]
    return {**report, "connections": connections}


@router.get("/limits", summary="Spend limits, spend alerts and rate limits, and the month's spend")
def limits_route(state: State, access: Staff) -> dict[str, Any]:
    """Every limit as last read (``read_at``), with ``used_usd`` (the subject's billed cost
    this UTC month) and ``percent`` of a spend limit or alert; ``connections`` says when each
    connection's were read and what failed. Admins and viewers only."""
    return limits_report(state, access, int(state.clock()))

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
    notes = state.store.upstream_notes()
    connections = []
    for name, provider in sorted(access.names.connections.items()):
        mine = {(n["source"], n["kind"]): n for n in notes if n["connection"] == name}
        read, failed = mine.get(("limits", "read")), mine.get(("limits", "failed"))
        connections.append(
            {
                "name": name,
                "provider": provider,
                "read_at": read["noted_at"] if read else None,
                "error": failed["detail"] if failed else None,
                "reported": provider == "openai",
            }
        )
    return {**report, "connections": connections}


@router.get("/limits", summary="Spend limits, spend alerts and rate limits, and the month's spend")
def limits_route(state: State, access: Staff) -> dict[str, Any]:
    """Every limit as last read (``read_at``), with ``used_usd`` (the subject's billed cost
    this UTC month) and ``percent`` of a spend limit or alert; ``connections`` says when each
    connection's were read and what failed. Admins and viewers only."""
    return limits_report(state, access, int(state.clock()))

"""``/api/tiers``: today's use of OpenAI's complimentary daily pools, per organization."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from usage_tracker import reports, runtime
from usage_tracker.reports import ReportError
from usage_tracker.web.api.common import DAY, ErrorBody, State, router
from usage_tracker.web.auth import Access, Viewer
from usage_tracker.web.state import AppState


def tiers_report(
    state: AppState, access: Access, now: int, connection: str | None = None
) -> dict[str, Any]:
    """Today's pools of one OpenAI organization: ``connection``'s (the first OpenAI
    connection's when None), with its own usage tier and sharing projects."""
    settings = state.settings
    openai = [c for c in state.connections if c.provider == "openai"]
    watched = runtime.pools_of(state.connections)
    if connection is not None:
        watched = next((c for c in openai if c.name == connection), None)
        if watched is None:
            raise ReportError(
                f"Invalid value for 'connection': no OpenAI connection named {connection!r} "
                f"(OpenAI's pools are per organization; known: "
                f"{', '.join(c.name for c in openai) or 'none'}).",
                "connection",
                status=404,
            )
    connection = watched.name if watched else None
    hour = now - now % 3600
    rows = state.results.get(
        ("pool rows", access.version, hour, connection),
        lambda: reports.pool_rows(state.store, now, connection),
    )
    report = reports.pool_usage(
        state.store,
        access.names,
        state.pools,
        now,
        usage_tier=watched.usage_tier if watched else settings.usage_tier,
        sharing_projects=watched.sharing_projects if watched else settings.sharing_projects,
        scope=access.scope,
        rows=rows,
    )
    return {
        "connection": connection,
        "organizations": [c.name for c in openai],
        "day_start": report.day_start,
        "now": report.now,
        "resets_at": report.day_start + DAY,
        "usage_tier": report.usage_tier,
        "table_as_of": report.table_as_of,
        "pools": {
            name: {
                "used": s.used,
                "limit": s.limit,
                "remaining": s.remaining,
                "percent": round(s.percent, 2),
                "burn_per_hour": round(s.burn_per_hour),
                "exhausted_at": s.exhausted_at,
                "reported_complimentary": s.reported_complimentary,
                "models": _ranked(s.models),
                "top_consumers": _ranked(s.people)[:5],
            }
            for name, s in report.pools.items()
        },
        "not_eligible": _ranked(report.not_eligible),
        "unclassified": _ranked(report.unclassified),
        "reported_free": _ranked(report.reported_free),
        "disagreements": report.disagreements,
        "free_group_unknown": _ranked(report.free_group_unknown),
        "pool_table_error": state.pool_error,
    }


def _ranked(tokens: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": k, "tokens": v} for k, v in sorted(tokens.items(), key=lambda kv: -kv[1])]


@router.get(
    "/tiers",
    summary="Today's complimentary-token pools (UTC day) of an OpenAI organization",
    responses={404: {"model": ErrorBody, "description": "No OpenAI connection of that name."}},
)
def tiers(
    state: State,
    access: Viewer,
    connection: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=40,
            description="The OpenAI connection (organization). Default: the first one.",
        ),
    ] = None,
) -> dict[str, Any]:
    """`organizations` names every OpenAI connection; each has pools of its own."""
    return tiers_report(state, access, int(state.clock()), connection)

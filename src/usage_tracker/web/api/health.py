"""``/api/health``: whether the tracker is well, per connection, for people and for probes."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request, Response

from usage_tracker import __version__
from usage_tracker.store import StoreUnavailableError, writes
from usage_tracker.sync import describe_note
from usage_tracker.web.api.common import State, router
from usage_tracker.web.auth import SignInRequired, principal
from usage_tracker.web.state import AppState


def _is_trouble(note: dict[str, Any]) -> bool:
    return (note["source"], note["kind"]) == writes.TROUBLE


def health_report(state: AppState) -> dict[str, Any]:
    """The app's state in words. It needs no sign-in, so it names no file path or secret."""
    now = int(state.clock())
    try:
        # One connection for the four reads: each of its own was a checkout, a ping and a
        # rollback more (the whole report on PostgreSQL: 8.0-10.6 → 5.0-5.8 ms, on every page).
        with state.store.snapshot() as store:
            store.ping()
            sync_states = store.sync_states()
            notes = store.upstream_notes()
            stored = store.connection_rows()
        database: dict[str, Any] = {"ok": True, "backend": state.store.backend, "error": None}
    except StoreUnavailableError as e:
        sync_states, notes, stored = [], [], []
        database = {"ok": False, "backend": state.store.backend, "error": str(e)}
    syncs = []
    errors: dict[str, list[str]] = {name: [] for name in state.clients}
    for s in sync_states:
        last = s["last_success_at"]
        syncs.append(
            {
                "connection": s["connection"],
                "source": s["source"],
                "last_success_at": last,
                "age_seconds": None if last is None else now - last,
                "backfill_complete": bool(s["backfill_complete"]),
                "last_error": s["last_error"],
                "notes": [
                    describe_note(n)
                    for n in notes
                    if (n["connection"], n["source"]) == (s["connection"], s["source"])
                ],
            }
        )
        if s["last_error"]:
            errors.setdefault(s["connection"], []).append(s["last_error"])
    # What is failing right now (a 429 being waited out, a refused connection) before the
    # sources' own errors, which are written when the sync gives up on them: this process's
    # client, else what the syncing process recorded lately (a worker that does not sync).
    connections = []
    for name, failures in errors.items():
        client = state.clients.get(name)
        shared = next(
            (
                n["detail"]
                for n in notes
                if n["connection"] == name and _is_trouble(n) and time.time() - n["noted_at"] < 900
            ),
            None,
        )
        error = (client.trouble if client is not None else None) or shared
        error = error or (failures[0] if failures else None)
        known = next((r for r in stored if r["name"] == name), None)
        connections.append(
            {
                "name": name,
                "provider": client.provider if client is not None else None,
                "configured": client is not None,
                "error": error,
                "limits_read_at": known["limits_read_at"] if known else None,
                "limits_error": known["limits_error"] if known else None,
            }
        )
    failing = [c for c in connections if c["error"] and c["configured"]]
    upstream_error = None
    if failing:
        first = failing[0]
        upstream_error = (
            first["error"] if len(connections) == 1 else (f"{first['name']}: {first['error']}")
        )
    notes = [n for n in notes if not _is_trouble(n)]
    if not state.clients:
        upstream_error = (
            "No admin key is set (OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY or CONNECTIONS_FILE): "
            "showing stored data only."
        )
    alerts = None
    if state.alerts is not None and database["ok"]:
        try:
            alerts = state.alerts.health()
        except StoreUnavailableError:
            alerts = None
    acting = None
    if state.actions is not None and database["ok"]:
        try:
            acting = state.actions.health()
        except StoreUnavailableError:
            acting = None
    state.mappings.current()  # re-reads the file if it changed
    mapping_error = state.mappings.error
    problems = (
        not database["ok"],
        upstream_error,
        mapping_error,
        state.loop.error,
        state.pool_error,
        state.prices_error,
        alerts is not None and alerts["problem"],
        acting is not None and acting["problem"],
    )
    return {
        "status": "degraded" if any(problems) else "ok",
        "version": __version__,
        "database": database,
        "connections": connections,
        "sync": syncs,
        "sync_error": state.loop.error,
        "upstream_error": upstream_error,
        "upstream_notes": [describe_note(n) for n in notes],
        "key_mappings_error": mapping_error,
        "pool_table_error": state.pool_error,
        "prices_file_error": state.prices_error,
        "alerts": alerts,
        "actions": acting,
    }


@router.get(
    "/health",
    summary="Database, last sync per source, upstream and sync errors, version",
    responses={503: {"description": "The database is unavailable (the body says why)."}},
)
def health(request: Request, state: State, response: Response) -> dict[str, Any]:
    """Open to all, for load balancers: signed out, only ``status``; the details need sign-in."""
    report = health_report(state)
    if not report["database"]["ok"]:
        response.status_code = 503
    try:
        principal(request)
    except (SignInRequired, StoreUnavailableError):
        return {"status": report["status"]}
    return report

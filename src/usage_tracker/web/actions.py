"""Deciding and undoing actions from the Alerts page (admins, CSRF-checked, audited): approve
a proposal (done at once), dismiss it, or resume what an action changed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from usage_tracker.actions.engine import ActionEngine
from usage_tracker.store import actions as rows
from usage_tracker.web.auth import Admin, CsrfForm, check_csrf
from usage_tracker.web.state import app_state

router = APIRouter(include_in_schema=False)
VERBS = ("approve", "dismiss", "resume")


def _engine(request: Request) -> ActionEngine:
    engine = app_state(request).actions
    if engine is None:
        raise HTTPException(503, "Actions are not running yet; try again in a few seconds.")
    return engine


@router.post("/alerts/actions/{action_id}/{verb}")
async def decide(
    request: Request,
    who: Admin,
    action_id: int,
    verb: str,
    csrf_token_: CsrfForm = "",
) -> Response:
    """``approve`` (the write happens now), ``dismiss`` or ``resume``; back to the action on
    the Alerts page, which says how it went."""
    check_csrf(request, who, csrf_token_)
    if verb not in VERBS:
        raise HTTPException(404, f"Unknown step {verb!r}: one of {', '.join(VERBS)}.")
    engine = _engine(request)

    def act() -> bool:
        with engine.store.transaction() as conn:
            if rows.get(conn, action_id) is None:
                raise HTTPException(404, f"No action #{action_id}.")
        if verb == "resume":
            return engine.resume(action_id, actor=who.email)
        return engine.decide(action_id, actor=who.email, approve=verb == "approve")

    if not await run_in_threadpool(act):
        raise HTTPException(409, f"Action #{action_id} cannot be {verb}d in the state it is in.")
    return RedirectResponse(f"/alerts#action-{action_id}", status_code=303)

"""The People page: who each key belongs to, and (admins) renaming, assigning and merging.

Every change is validated, kept in the database (so it survives restarts and is shared by
replicas) and written to the audit log with who made it and when.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usage_tracker import __version__, reports
from usage_tracker.people.access import normal_email
from usage_tracker.store import people as rows
from usage_tracker.web.auth import Access, Admin, CsrfForm, Viewer, check_csrf, csrf_token
from usage_tracker.web.pages import Preset, date_range, no_keys_notice, picked_range
from usage_tracker.web.state import app_state
from usage_tracker.web.templating import templates

DAY = 86400
router = APIRouter(include_in_schema=False)
Name = Annotated[str, Form(min_length=1, max_length=200)]


def _window(request: Request) -> tuple[int, int]:
    """The last 30 UTC days (the forms' choices: every key used lately)."""
    return date_range("30d", int(app_state(request).clock()))


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    access: Viewer,
    range: Annotated[Preset, Query()] = "30d",
    start: str | None = None,
    end: str | None = None,
) -> HTMLResponse:
    """Each person with their keys, tokens and cost over a range (default: the last 30 days)."""
    state = app_state(request)
    picked = picked_range(range, int(state.clock()), start, end, fallback="30d")
    lo, hi = picked["start"], picked["end"]
    found = reports.people(state.store, access.names, lo, hi, scope=access.scope)
    summary = reports.summary(state.store, access.names, lo, hi, scope=access.scope)
    money = {r["person"]: r for r in summary["by"]["person"]}
    for person in found:
        row = money.get(person["person"], {})
        person["billed_cost"] = row.get("billed_cost")
        person["estimated_cost"] = row.get("estimated_cost")
        person["team"] = access.names.person_team(person["person"], person["email"])
    with state.store.transaction() as conn:
        changes = rows.recent_changes(conn) if access.who.is_admin else []
    context: dict[str, Any] = {
        "request": request,
        "version": __version__,
        "who": access.who,
        "csrf": csrf_token(request, access.who),
        "several_connections": len(access.names.connections) > 1,
        **picked,
        "totals": {
            "tokens": sum(p["tokens"] for p in found),
            "billed": summary["billed_usd"],
            "estimated": summary["estimated_usd"],
        },
        "no_keys": no_keys_notice(state, access),
        "people": found,
        "keys": sorted(
            ((k["id"], f"{k['name']} ({p['person']})") for p in found for k in p["keys"]),
            key=lambda kv: kv[1].lower(),
        ),
        "changes": changes,
    }
    return templates.TemplateResponse(request, "people.html", context)


def _known_keys(request: Request, access: Access) -> set[str]:
    """Every key the page offers: those OpenAI lists or an admin assigned, and those with
    usage on the page's days even when OpenAI no longer lists them."""
    found = reports.people(app_state(request).store, access.names, *_window(request))
    return {k["id"] for p in found for k in p["keys"]} | set(access.names.owners)


def _keys_of(request: Request, access: Access, person: str) -> list[str]:
    found = sorted(k for k in _known_keys(request, access) if access.names.person(k) == person)
    if not found:
        raise HTTPException(400, f"No key belongs to {person!r}.")
    return found


def _email_or_none(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        return normal_email(value)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None


def _change(
    request: Request, who: Any, keys: list[str], person: str, email: str | None, detail: str
) -> Response:
    now = int(time.time())
    with app_state(request).store.transaction() as conn:
        rows.set_owner(conn, keys, person.strip(), email, actor=who.email, now=now)
        rows.record(conn, who.email, detail.split(":", 1)[0], detail, now)
    return RedirectResponse("/people", status_code=303)


@router.post("/people/rename")
def rename(
    request: Request,
    who: Admin,
    access: Viewer,
    person: Name,
    new_name: Name,
    csrf_token_: CsrfForm = "",
) -> Response:
    """Call a person something else (all their keys follow)."""
    check_csrf(request, who, csrf_token_)
    keys = _keys_of(request, access, person)
    email = access.names.email(keys[0])
    detail = f"rename: {person!r} is now {new_name.strip()!r} ({len(keys)} keys)"
    return _change(request, who, keys, new_name, email, detail)


@router.post("/people/assign")
def assign(
    request: Request,
    who: Admin,
    access: Viewer,
    key_id: Annotated[str, Form(min_length=1, max_length=200)],
    person: Name,
    email: Annotated[str, Form(max_length=320)] = "",
    csrf_token_: CsrfForm = "",
) -> Response:
    """Give a key to a person (an existing one or a new one), with their email."""
    check_csrf(request, who, csrf_token_)
    if key_id not in _known_keys(request, access):
        raise HTTPException(400, f"There is no key {key_id!r}.")
    address = _email_or_none(email)
    if address is None:  # joining someone already known: their email comes along
        known = [k for k in access.names.keys if access.names.person(k) == person.strip()]
        address = access.names.email(known[0]) if known else None
    detail = f"assign: key {access.names.key(key_id)!r} to {person.strip()!r}"
    return _change(request, who, [key_id], person, address, detail)


@router.post("/people/team")
def set_team(
    request: Request,
    who: Admin,
    access: Viewer,
    person: Name,
    team: Annotated[str, Form(max_length=200)] = "",
    csrf_token_: CsrfForm = "",
) -> Response:
    """Put a person in a team (empty: the mapping file's or the provider's again); audited.
    Over the mapping file's ``people``, as names set here are over its names."""
    check_csrf(request, who, csrf_token_)
    _keys_of(request, access, person)  # 400 for a person with no key
    now = int(time.time())
    chosen = team.strip() or None
    with app_state(request).store.transaction() as conn:
        if rows.set_person_team(
            conn, person.strip(), chosen, source=rows.PAGE, actor=who.email, now=now
        ):
            said = f"in team {chosen!r}" if chosen else "in no team set here"
            rows.record(conn, who.email, "team", f"team: {person.strip()!r} {said}", now)
    return RedirectResponse("/people", status_code=303)


@router.post("/people/merge")
def merge(
    request: Request,
    who: Admin,
    access: Viewer,
    person: Name,
    into: Name,
    csrf_token_: CsrfForm = "",
) -> Response:
    """Make two people one: every key of ``person`` goes to ``into``."""
    check_csrf(request, who, csrf_token_)
    if person == into:
        raise HTTPException(400, "Choose two different people to merge.")
    keys = _keys_of(request, access, person)
    email = access.names.email(_keys_of(request, access, into)[0])
    detail = f"merge: {person!r} into {into!r} ({len(keys)} keys)"
    return _change(request, who, keys, into, email, detail)

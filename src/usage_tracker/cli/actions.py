"""``usage-tracker actions plan|list|approve|dismiss|resume|run``: what the budget rules would
do now (changing nothing), what was done, and deciding and undoing from a terminal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from usage_tracker import runtime
from usage_tracker.actions.engine import ActionEngine
from usage_tracker.reports.actions import WORDS
from usage_tracker.store import actions as rows
from usage_tracker.text.untrusted import terminal

from .alerts import _fail, engine_for, opened

actions = typer.Typer(
    help="Budget rules that act at a provider (an action in ALERTS_FILE, a write key)."
)
ACTOR = "cli"


@contextmanager
def _engine() -> Iterator[ActionEngine]:
    with opened() as (settings, store):
        alerts = engine_for(settings, store)
        yield runtime.action_engine(settings, store, lambda: alerts)


def _when(ts: int | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _targets(action: dict[str, Any]) -> str:
    return ", ".join(t.get("name") or t.get("key_id") or t["project_id"] for t in action["targets"])


@actions.command("plan")
def plan() -> None:
    """Print what the rules would do now, changing nothing (here or at any provider)."""
    with _engine() as engine:
        planned = engine.plan()
        if not engine.enabled:
            typer.echo("no budget rule names an action (action: pause_keys or project_limit)")
            return
    if not planned:
        typer.echo("nothing to do now: no budget with an action is spent")
    for p in planned:
        names = ", ".join(
            (t.get("name") or t.get("key_id") or t["project_id"])
            + (f" → ${t['cents'] / 100:,.2f}" if "cents" in t else "")
            for t in p.targets
        )
        how = "at once (mode: auto)" if p.mode == "auto" else "once an admin approves"
        if p.blocked:
            how = f"never: {p.blocked}"
        typer.echo(terminal(f"{p.connection}: {WORDS[p.kind]} of {p.subject}, {p.period}: {how}"))
        typer.echo(terminal(f"  why: {p.reason}"))
        typer.echo(terminal(f"  targets: {names or '(none)'}"))


@actions.command("list")
def listing() -> None:
    """Every action recorded, newest first."""
    with _engine() as engine, engine.store.transaction() as conn:
        found = rows.listing(conn)
    if not found:
        typer.echo("no action recorded")
    for a in found:
        typer.echo(
            terminal(
                f"#{a['id']} {a['state']}: {WORDS[a['kind']]} of {a['subject']} in "
                f"{a['connection']}, {a['period']} ({_targets(a)}); recorded "
                f"{_when(a['created_at'])}"
                + (f"; error: {a['last_error']}" if a["last_error"] else "")
            )
        )


ActionId = Annotated[int, typer.Argument(help="The action's number (see `actions list`).")]


def _decided(changed: bool, engine: ActionEngine, action_id: int, what: str) -> None:
    with engine.store.transaction() as conn:
        action = rows.get(conn, action_id)
    if action is None:
        raise _fail(f"no action #{action_id}")
    if not changed:
        raise _fail(f"action #{action_id} is {action['state']}: it cannot be {what}")
    typer.echo(terminal(f"#{action_id} {action['state']}"))
    if action["last_error"]:
        typer.echo(terminal(f"error: {action['last_error']}"), err=True)
        if action["state"] in rows.PENDING:
            raise typer.Exit(1)


@actions.command("approve")
def approve(action_id: ActionId) -> None:
    """Approve a proposed action: it is done at once."""
    with _engine() as engine:
        _decided(engine.decide(action_id, actor=ACTOR, approve=True), engine, action_id, "approved")


@actions.command("dismiss")
def dismiss(action_id: ActionId) -> None:
    """Dismiss a proposed action: nothing is done."""
    with _engine() as engine:
        changed = engine.decide(action_id, actor=ACTOR, approve=False)
        _decided(changed, engine, action_id, "dismissed")


@actions.command("resume")
def resume(action_id: ActionId) -> None:
    """Undo an action: the keys get back exactly the scopes or status they had, the project
    its previous hard limit (or none)."""
    with _engine() as engine:
        _decided(engine.resume(action_id, actor=ACTOR), engine, action_id, "resumed")


@actions.command("run")
def run() -> None:
    """Record what the rules ask for and do what is due now (what serve and sync do after
    every sync)."""
    with _engine() as engine:
        recorded = engine.run()
        problem = engine.status.error
    for action_id in recorded:
        typer.echo(f"recorded: #{action_id}")
    typer.echo(f"{len(recorded)} new action(s)")
    if problem:
        raise _fail(problem)

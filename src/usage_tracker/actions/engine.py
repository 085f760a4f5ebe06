"""After every sync, after the alerts: record the actions the rules ask for, then do what is
approved and undo what is to be resumed, retrying failures with backoff.

Record, then act: an action is recorded under a unique (connection, rule, subject, period)
before anything is written, and only the process that claimed it writes. Before each write the
target's state is read and stored; a retry finds it stored and never takes a changed target's
state for its previous one. A restart, a re-sync or a second replica finds the action recorded
and its claim taken, and writes nothing twice. Every step goes to the audit log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.alerts.evaluate import Inputs
from usage_tracker.alerts.messages import Firing
from usage_tracker.alerts.rules import AlertRules
from usage_tracker.providers.errors import PreviousStateUnknownError, UpstreamError
from usage_tracker.providers.writes import Writer
from usage_tracker.reports.actions import WORDS
from usage_tracker.store import Store
from usage_tracker.store import actions as rows
from usage_tracker.store import people as audit

from .plan import Planned, plan

log = logging.getLogger(__name__)

RETRY_DELAYS = (30, 120, 600, 1800, 3600)
"""Seconds before each retry of a failed write; after the last, the action is given up."""
CLAIM_SECONDS = 120
"""How long a process may take to do one action before another may try."""
RULE_ACTOR = "rule (mode: auto)"


@dataclass
class ActionStatus:
    last_run_at: int | None = None
    error: str | None = None
    recorded: int = 0
    done: int = 0
    failed: int = 0


class ActionEngine:
    """The actions of one tracker. ``writers`` opens each connection's writer by name (only
    the connections with a write key); ``alerts`` gives the alert engine of now, whose rules
    (the budget rules name the actions) and channels (the notices go there) are used."""

    def __init__(
        self,
        store: Store,
        writers: Mapping[str, Callable[[], Writer]],
        alerts: Callable[[], AlertEngine],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.writers = writers
        self._alerts = alerts
        self.clock = clock
        self.status = ActionStatus()

    @property
    def alerts(self) -> AlertEngine:
        return self._alerts()

    @property
    def rules(self) -> AlertRules:
        return self.alerts.rules

    def inputs(self) -> Inputs:
        return self.alerts.inputs()

    @property
    def enabled(self) -> bool:
        """Whether any budget rule names an action."""
        return any(b.action for b in self.rules.budgets)

    # -- one pass ------------------------------------------------------------------------------

    def plan(self, now: int | None = None) -> list[Planned]:
        """What the rules ask for now (recorded or not), changing nothing."""
        now = int(self.clock()) if now is None else now
        writable = dict.fromkeys(self.writers, True)
        return plan(self.rules, self.inputs(), now, writable)

    def run(self, now: int | None = None) -> list[int]:
        """Record what the rules ask for, then do what is due; failures are recorded in
        :attr:`status` and logged, never raised (actions must not stop the sync loop). The
        ids of the actions recorded now."""
        now = int(self.clock()) if now is None else now
        recorded: list[int] = []
        try:
            if self.enabled:
                recorded = self.record(self.plan(now), now)
            self.act_due(now)
        except Exception as e:
            log.exception("actions: a pass failed")
            self.status.error = f"Actions could not be evaluated ({type(e).__name__}: {e})"
        else:
            self.status.error = None
        self.status.last_run_at = now
        return recorded

    def record(self, planned: list[Planned], now: int) -> list[int]:
        """Store each planned action of a connection with a write key, not stored before:
        proposed, or approved at once in ``mode: auto``. Their ids."""
        new = []
        for action in planned:
            if action.blocked or not action.targets:
                continue
            row = action.row()
            if action.mode == "auto":
                row |= {"state": rows.APPROVED, "decided_by": RULE_ACTOR, "decided_at": now}
            else:
                row |= {"state": rows.PROPOSED}
            with self.store.transaction() as conn:
                action_id = rows.record(conn, row, now)
                if action_id is not None:
                    audit.record(
                        conn,
                        RULE_ACTOR if action.mode == "auto" else "rule",
                        "action.proposed" if action.mode == "propose" else "action.approved",
                        f"#{action_id} {WORDS[action.kind]} ({action.connection}, "
                        f"{action.subject}, {action.period}): {action.reason}",
                        now,
                    )
            if action_id is None:
                continue
            new.append(action_id)
            self.status.recorded += 1
            log.info("action #%d recorded (%s): %s", action_id, action.mode, action.reason)
            if action.mode == "propose":
                self._notify(action_id, "proposed", now)
        return new

    # -- deciding ------------------------------------------------------------------------------

    def decide(self, action_id: int, *, actor: str, approve: bool) -> bool:
        """An admin approves (done at once) or dismisses a proposal; False when it is not one."""
        now = int(self.clock())
        with self.store.transaction() as conn:
            changed = rows.decide(conn, action_id, now, actor=actor, approve=approve)
            if changed:
                audit.record(
                    conn,
                    actor,
                    "action.approved" if approve else "action.dismissed",
                    f"#{action_id}",
                    now,
                )
        if changed and approve:
            self.act_due(now)
        return changed

    def resume(self, action_id: int, *, actor: str) -> bool:
        """Undo an action's change (written back at once); False when there is nothing to."""
        now = int(self.clock())
        with self.store.transaction() as conn:
            changed = rows.request_resume(conn, action_id, now, actor=actor)
            if changed:
                audit.record(conn, actor, "action.resume", f"#{action_id}", now)
        if changed:
            self.act_due(now)
        return changed

    # -- doing ---------------------------------------------------------------------------------

    def act_due(self, now: int) -> tuple[int, int]:
        """Do (or undo) every due action this process can claim; (finished, failed) counts."""
        finished = failed = 0
        with self.store.transaction() as conn:
            due = rows.due(conn, now)
        for action_id in due:
            with self.store.transaction() as conn:
                if not rows.claim(conn, action_id, now, CLAIM_SECONDS):
                    continue
                action = rows.get(conn, action_id)
            assert action is not None
            ok = self._attempt(action, now)
            finished += ok
            failed += not ok
        return finished, failed

    def _attempt(self, action: dict[str, Any], now: int) -> bool:
        undo = action["state"] == rows.RESUMING
        opener = self.writers.get(action["connection"])
        try:
            if opener is None:
                raise UpstreamError(
                    f"the connection {action['connection']} has no write key any more "
                    "(OPENAI_ADMIN_WRITE_KEY, ANTHROPIC_ADMIN_WRITE_KEY or write_key_env)"
                )
            with closing(opener()) as writer:
                note = self._undo(writer, action) if undo else self._do(writer, action)
        except UpstreamError as e:
            self._failed(action, str(e), now)
            return False
        state = rows.RESUMED if undo else rows.DONE
        with self.store.transaction() as conn:
            rows.finish(conn, action["id"], int(self.clock()), state=state, error=note)
            audit.record(
                conn,
                action["resumed_by"] if undo else action["decided_by"] or RULE_ACTOR,
                f"action.{state}",
                f"#{action['id']} {WORDS[action['kind']]}"
                + (" undone" if undo else " done")
                + (f": {note}" if note else ""),
                int(self.clock()),
            )
        self.status.done += 1
        log.info("action #%d %s", action["id"], state)
        if not undo and action["mode"] == "auto":
            self._notify(action["id"], "done", now)
        return True

    def _do(self, writer: Writer, action: dict[str, Any]) -> str | None:
        """Write each target's change, its previous state stored first; what was left
        undone, in words (None: everything)."""
        previous: dict[str, Any] = action["previous"]
        skipped = []
        for target in action["targets"]:
            ident = target.get("key_id") or target["project_id"]
            entry = previous.get(ident)
            if entry is None:
                try:
                    if action["kind"] == "pause_keys":
                        before: Any = writer.key_state(target["project_id"], ident)
                    else:
                        before = writer.project_limit(target["project_id"])
                except PreviousStateUnknownError as e:
                    previous[ident] = {"skipped": str(e)}
                    self._save(action["id"], previous)
                    skipped.append(str(e))
                    continue
                entry = previous[ident] = {"before": before, "applied": False}
                self._save(action["id"], previous)
            if "skipped" in entry:
                skipped.append(entry["skipped"])
                continue
            if entry["applied"]:
                continue
            if action["kind"] == "pause_keys":
                writer.pause_key(target["project_id"], ident)
            else:
                writer.set_project_limit(target["project_id"], int(target["cents"]))
            entry["applied"] = True
            self._save(action["id"], previous)
        return "; ".join(skipped) or None

    def _undo(self, writer: Writer, action: dict[str, Any]) -> str | None:
        previous: dict[str, Any] = action["previous"]
        for target in action["targets"]:
            ident = target.get("key_id") or target["project_id"]
            entry = previous.get(ident)
            if not entry or not entry.get("applied") or entry.get("restored"):
                continue
            if action["kind"] == "pause_keys":
                writer.restore_key(target["project_id"], ident, entry["before"])
            else:
                writer.set_project_limit(target["project_id"], entry["before"])
            entry["restored"] = True
            self._save(action["id"], previous)
        return None

    def _save(self, action_id: int, previous: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            rows.save_previous(conn, action_id, previous)

    def _failed(self, action: dict[str, Any], error: str, now: int) -> None:
        attempts = int(action["attempts"])
        retry_at = now + RETRY_DELAYS[attempts] if attempts < len(RETRY_DELAYS) else None
        undo = action["state"] == rows.RESUMING
        with self.store.transaction() as conn:
            rows.finish(
                conn,
                action["id"],
                int(self.clock()),
                state=rows.DONE if undo else rows.FAILED,
                error=error,
                retry_at=retry_at,
            )
            if retry_at is None:
                audit.record(
                    conn, "tracker", "action.failed", f"#{action['id']} gave up: {error}", now
                )
        self.status.failed += 1
        log.warning(
            "action #%d failed (attempt %d)%s: %s",
            action["id"],
            attempts + 1,
            "" if retry_at is None else f"; retrying in {retry_at - now} s",
            error,
        )
        if retry_at is None and not undo:
            self._notify(action["id"], "failed", now)

    # -- telling -------------------------------------------------------------------------------

    def _notify(self, action_id: int, event: str, now: int) -> None:
        """An alert on the rule's channels (the default ones): a proposal awaits, an action
        was done (and how to undo it) or given up."""
        with self.store.transaction() as conn:
            action = rows.get(conn, action_id)
        assert action is not None
        firing = notice(action, event, self.alerts.inputs().base_url)
        try:
            self.alerts.record([firing], now)
            self.alerts.deliver_due(now)
        except Exception:
            log.exception("action #%d: the notice could not be sent", action_id)

    # -- health --------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        with self.store.autocommit() as conn:  # reads: no BEGIN and COMMIT around them
            counts = rows.counts(conn)
            troubled = [a for a in rows.listing(conn, 50) if a["last_error"]]
        problem = self.status.error
        waiting = [a for a in troubled if a["state"] in rows.PENDING]
        if problem is None and waiting:
            problem = (
                f"{len(waiting)} action(s) failed to be written and are being retried: "
                f"{waiting[0]['last_error']}"
            )
        if problem is None and counts.get(rows.FAILED):
            problem = f"{counts[rows.FAILED]} action(s) failed for good: see the Alerts page"
        return {
            "write_keys": sorted(self.writers),
            "last_run_at": self.status.last_run_at,
            "states": counts,
            "problem": problem,
        }


def notice(action: dict[str, Any], event: str, base_url: str) -> Firing:
    what = WORDS[action["kind"]]
    where = f"{action['subject']} in {action['connection']}"
    targets = ", ".join(
        t.get("name") or t.get("key_id") or t["project_id"] for t in action["targets"]
    )
    page = f"{base_url.rstrip('/')}/alerts#action-{action['id']}"
    if event == "proposed":
        title = f"Action proposed: {what} of {where}"
        lines = (
            action["reason"],
            f"Proposed: {what} ({targets}). An admin approves or dismisses it on the Alerts page.",
            page,
        )
    elif event == "done":
        title = f"Action done: {what} of {where}"
        lines = (
            action["reason"],
            f"Done: {what} ({targets}). To undo it: Resume on the Alerts page, or "
            f"`usage-tracker actions resume {action['id']}`.",
            page,
        )
    else:
        title = f"Action failed: {what} of {where}"
        lines = (action["reason"], f"Gave up: {action['last_error']}", page)
    return Firing(
        dedupe_key=f"action:{action['id']}:{event}",
        rule=action["rule"],
        kind="action",
        period=action["period"],
        title=title,
        lines=lines,
        payload={
            "action_id": action["id"],
            "event": event,
            "kind": action["kind"],
            "connection": action["connection"],
            "subject": action["subject"],
            "targets": action["targets"],
            "url": page,
        },
    )

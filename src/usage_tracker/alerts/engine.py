"""After every sync: evaluate the rules, record each new alert (before anything is sent), then
deliver what is due, retrying failures with backoff.

Once means once: an alert is recorded under a unique key (rule, subject, threshold, period) in
the same transaction as its deliveries, and a delivery is sent only by the process that claimed
it. A restart, a re-sync of the same hours or a second replica finds the key taken and sends
nothing; a process killed mid-send leaves a claim that expires, and the message is retried (at
most one duplicate, never a loss)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from usage_tracker.store import Store
from usage_tracker.store import alerts as rows

from .channels import Channel, Channels, payload_json
from .evaluate import Inputs, evaluate
from .messages import Firing
from .rules import AlertRules

log = logging.getLogger(__name__)

RETRY_DELAYS = (60, 300, 900, 3600, 3 * 3600)
"""Seconds before each retry of a failed delivery; after the last, it is given up."""
CLAIM_SECONDS = 120
"""How long a process may take to send one message before another may try."""


@dataclass
class EngineStatus:
    """How the last evaluation went, for health and the Alerts page."""

    last_run_at: int | None = None
    error: str | None = None
    recorded: int = 0
    sent: int = 0
    failed: int = 0


@dataclass
class RunReport:
    recorded: list[str] = field(default_factory=list)
    """Dedupe keys of the alerts that fired for the first time."""
    caught_up: list[str] = field(default_factory=list)
    """Keys of alerts that fired when no channel was set, still stand, and are now sent."""
    standing: int = 0
    """Alerts the rules raise now (new or not)."""
    sent: int = 0
    failed: int = 0

    def why_nothing_was_sent(self, channels: int) -> str | None:
        """In words, why this pass sent nothing (None when it sent something or failed)."""
        if self.sent or self.failed:
            return None
        if not channels:
            return (
                "no channel is set (ALERT_URLS, channels in ALERTS_FILE or on the Alerts "
                "page): alerts are recorded only"
            )
        if not self.standing:
            return "every watched figure is below its threshold"
        return "each standing alert was sent before (an alert fires once per threshold and period)"


def _superseded(firings: Sequence[Firing]) -> set[str]:
    """Keys of the firings below a higher threshold of their group that stands too."""
    top: dict[str, float] = {}
    for f in firings:
        if f.group:
            top[f.group] = max(top.get(f.group, f.rank), f.rank)
    return {f.dedupe_key for f in firings if f.group and f.rank < top[f.group]}


class AlertEngine:
    def __init__(
        self,
        store: Store,
        rules: AlertRules,
        default_urls: Sequence[str],
        inputs: Callable[[], Inputs],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.rules = rules
        self.default_urls = tuple(dict.fromkeys([*rules.channels, *default_urls]))
        self.channels = Channels([*self.default_urls, *rules.all_channels()])
        self.labels = tuple(self.channels.label(Channel(u).id) for u in self.default_urls)
        self.inputs = inputs
        self.clock = clock
        self.status = EngineStatus()
        self.fingerprint = ""
        """Of the settings stored on the Alerts page this engine was built with."""

    # -- one pass ------------------------------------------------------------------------------

    def run(self, now: int | None = None) -> RunReport:
        """Evaluate, record and deliver. Failures are recorded in :attr:`status` and logged,
        never raised: alerts must not stop the sync loop."""
        now = int(self.clock()) if now is None else now
        report = RunReport()
        try:
            firings = evaluate(self.rules, self.inputs(), now)
            report.standing = len(firings)
            report.recorded = self.record(firings, now)
            report.caught_up = self.catch_up(firings, now)
            report.sent, report.failed = self.deliver_due(now)
        except Exception as e:
            log.exception("alerts: evaluation failed")
            self.status.error = f"Alerts could not be evaluated ({type(e).__name__}: {e})"
        else:
            self.status.error = None
        self.status.last_run_at = now
        self.status.recorded += len(report.recorded)
        self.status.sent += report.sent
        self.status.failed += report.failed
        return report

    def record(self, firings: Sequence[Firing], now: int) -> list[str]:
        """Store the firings not stored before; their dedupe keys."""
        lower = _superseded(firings)
        new = []
        for firing in firings:
            superseded = firing.dedupe_key in lower
            deliveries = [] if superseded else self._deliveries(firing)
            with self.store.transaction() as conn:
                stored = rows.record(conn, _row(firing, superseded), deliveries, now)
            if stored is not None:
                new.append(firing.dedupe_key)
                log.info("alert: %s", firing.title)
        return new

    def catch_up(self, firings: Sequence[Firing], now: int) -> list[str]:
        """Alerts recorded when they had no channel at all that still stand now: delivered
        once to the channels there are now (an alert that passed is not sent late)."""
        lower = _superseded(firings)
        by_key = {f.dedupe_key: f for f in firings if f.dedupe_key not in lower}
        with self.store.transaction() as conn:
            waiting = rows.never_delivered(conn, list(by_key))
        caught = []
        for key, alert_id in waiting.items():
            deliveries = self._deliveries(by_key[key])
            if not deliveries:
                continue
            with self.store.transaction() as conn:
                if rows.add_deliveries(conn, alert_id, deliveries, now):
                    caught.append(key)
                    log.info("alert: %s (fired with no channel; sent now)", by_key[key].title)
        return caught

    def _deliveries(self, firing: Firing) -> list[dict[str, Any]]:
        urls = firing.channels or self.default_urls
        targets = [(Channel(u).id, "") for u in urls]
        if firing.recipient and self.rules.owner_email:
            targets.append((Channel(self.rules.owner_email).id, firing.recipient))
        return [
            {"channel": c, "channel_label": self.channels.label(c), "recipient": recipient}
            for c, recipient in dict.fromkeys(targets)
        ]

    def deliver_due(self, now: int) -> tuple[int, int]:
        """Send every due delivery this process can claim; (sent, failed) counts."""
        sent = failed = 0
        with self.store.transaction() as conn:
            due = rows.due(conn, now)
        for delivery in due:
            with self.store.transaction() as conn:
                if not rows.claim(conn, delivery["id"], now, CLAIM_SECONDS):
                    continue
            error = self._send(delivery)
            retry_at = None
            if error is not None and delivery["attempts"] < len(RETRY_DELAYS):
                retry_at = now + RETRY_DELAYS[delivery["attempts"]]
            with self.store.transaction() as conn:
                rows.finish(conn, delivery["id"], int(self.clock()), error=error, retry_at=retry_at)
            if error is None:
                sent += 1
            else:
                failed += 1
                log.warning(
                    "alert %r to %s failed (attempt %d): %s",
                    delivery["title"],
                    delivery["channel_label"],
                    delivery["attempts"] + 1,
                    error,
                )
        return sent, failed

    def _send(self, delivery: dict[str, Any]) -> str | None:
        channel = self.channels.get(delivery["channel"])
        if channel is None:
            return "this channel is no longer configured (ALERT_URLS or ALERTS_FILE changed)"
        return channel.send(
            delivery["title"],
            delivery["message"],
            json.loads(delivery["payload"]),
            delivery["recipient"],
            idempotency_key=idempotency_key(delivery),
        )

    # -- for the Alerts page and health ----------------------------------------------------------

    def preview(self, now: int | None = None) -> list[Firing]:
        """What the rules raise now (sent or not): the Alerts page's dry run."""
        return evaluate(self.rules, self.inputs(), int(self.clock()) if now is None else now)

    def send_test(self) -> list[tuple[str, str | None]]:
        """A test message to every default channel: (channel, error or None) each."""
        results = []
        for url in self.default_urls:
            channel = Channel(url)
            error = channel.send(
                "Test alert from the OpenAI Usage Tracker",
                "If you can read this, alerts reach this channel.",
                {"kind": "test"},
            )
            results.append((channel.label, error))
        return results

    def default_labels(self) -> tuple[str, ...]:
        """The default channels, redacted."""
        return self.labels

    def health(self) -> dict[str, Any]:
        """Evaluation and delivery in numbers; ``problem`` says in words what needs a look
        (an evaluation that failed, deliveries being retried or given up on in the last day)."""
        now = int(self.clock())
        with self.store.autocommit() as conn:  # reads: no BEGIN and COMMIT around them
            counts = rows.delivery_counts(conn, now - 86400)
        problem = self.status.error
        if problem is None and (counts["retrying"] or counts["failed_recently"]):
            problem = (
                f"{counts['retrying']} alert deliveries are being retried and "
                f"{counts['failed_recently']} failed for good in the last day: see the Alerts page"
            )
        return {
            "channels": len(self.default_urls),
            "last_evaluated_at": self.status.last_run_at,
            "error": self.status.error,
            "problem": problem,
            "deliveries": counts,
        }


def idempotency_key(delivery: dict[str, Any]) -> str:
    """The same for every attempt of one delivery (an alert to one channel and recipient),
    and for no other: what a webhook receiver drops duplicates by."""
    parts = (delivery["dedupe_key"], delivery["channel"], delivery["recipient"] or "")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _row(firing: Firing, superseded: bool) -> dict[str, Any]:
    return {
        "dedupe_key": firing.dedupe_key,
        "rule": firing.rule,
        "kind": firing.kind,
        "period": firing.period,
        "title": firing.title,
        "message": firing.message,
        "payload": payload_json(firing.payload),
        "superseded": superseded,
    }

"""``/metrics`` for Prometheus (prometheus-client's text format).

Every figure is read from the database at scrape time by a collector, so any number of workers
or replicas answer the same (no per-process counters to merge: multiprocess-safe by design).
Protected like the API, or by its own ``METRICS_TOKEN`` for a scraper.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from usage_tracker import reports
from usage_tracker.reports.forecast import month_bounds
from usage_tracker.text.untrusted import printable
from usage_tracker.web.auth import access
from usage_tracker.web.state import AppState, app_state

DAY = 86400
router = APIRouter(include_in_schema=False)
GROUPS = ("api_key", "person", "team", "model", "project", "source", "connection", "provider")
"""The summary's groupings served as series (``group`` label); a connection's id is its name,
a team's its name, a provider's its name (``openai``)."""


def _per_row(name: str, what: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"usage_tracker_{name}",
        f"{what} in the current UTC day or month, per group and id (names: "
        "usage_tracker_name_info).",
        labels=["window", "group", "id"],
    )


def _row_id(group: str, row: dict[str, Any], emails: dict[str, str]) -> str:
    """A series' identity: what OpenAI identifies the row by (key, user, project id; model),
    a person's email (their name where no email is known), never a display name alone, so
    that keys sharing a name are separate series and a rename keeps the series."""
    if group == "person":
        return emails.get(row["person"]) or str(row["person"])
    return str(row[group] or "(none)")


def _person_emails(names: Any) -> dict[str, str]:
    """Person → email, where every key of the person that has one agrees on it."""
    seen: dict[str, set[str]] = {}
    for key_id in {*names.keys, *names.owners}:
        if email := names.email(key_id):
            seen.setdefault(names.person(key_id), set()).add(email)
    return {person: next(iter(e)) for person, e in seen.items() if len(e) == 1}


class UsageCollector(Collector):
    """Collects, at each scrape, today's and this month's figures from the database."""

    def __init__(self, state: AppState, access: Any) -> None:
        self.state, self.access = state, access

    def collect(self) -> Iterator[Metric]:
        state, scope, names = self.state, self.access.scope, self.access.names
        now = int(state.clock())
        windows = {"day": (now - now % DAY, now - now % 3600 + 3600), "month": month_bounds(now)}
        tokens = _per_row("tokens", "Input plus output tokens")
        requests = _per_row("requests", "Model requests")
        billed = _per_row("billed_usd", "Billed cost (Costs API)")
        estimated = _per_row("estimated_usd", "Estimated cost at list prices")
        info = GaugeMetricFamily(
            "usage_tracker_name_info",
            "The display name of each group's id (1), and the connection and provider it "
            "belongs to where it belongs to one: join on group and id to label a series.",
            labels=["group", "id", "name", "connection", "provider"],
        )
        emails = _person_emails(names)
        named: dict[tuple[str, str], tuple[str, str, str]] = {}
        for window, (start, end) in windows.items():
            summary = reports.summary(state.store, names, start, end, scope=scope)
            totals = summary["totals"]
            tokens.add_metric([window, "organization", "all"], totals["tokens"])
            requests.add_metric([window, "organization", "all"], totals["num_model_requests"])
            billed.add_metric([window, "organization", "all"], float(summary["billed_usd"]))
            estimated.add_metric([window, "organization", "all"], float(summary["estimated_usd"]))
            for group in GROUPS:
                for row in summary["by"][group]:
                    ident = printable(_row_id(group, row, emails))
                    name = str(row.get(f"{group}_name") or row[group] or "(none)")
                    connection = str(row.get("connection") or "")
                    provider = str(
                        row.get("provider")
                        or (names.provider(connection) if group == "connection" else "")
                        or ""
                    )
                    named[group, ident] = (printable(name), connection, provider)
                    labels = [window, group, ident]
                    tokens.add_metric(labels, row["tokens"])
                    requests.add_metric(labels, row["num_model_requests"])
                    if row.get("billed_cost") is not None:
                        billed.add_metric(labels, float(row["billed_cost"]))
                    if row.get("estimated_cost") is not None:
                        estimated.add_metric(labels, float(row["estimated_cost"]))
        for (group, ident), (name, connection, provider) in named.items():
            info.add_metric([group, ident, name, connection, provider], 1)
        yield from (tokens, requests, billed, estimated, info)
        yield from self._pools(now)
        yield from self._limits(now)
        yield from self._sync(now)
        yield from self._alerts()
        yield from self._actions()

    def _pools(self, now: int) -> Iterator[Metric]:
        from usage_tracker.web.api.tiers import tiers_report

        report = tiers_report(self.state, self.access, now)
        used = GaugeMetricFamily(
            "usage_tracker_pool_used_tokens", "Complimentary pool used today.", labels=["pool"]
        )
        limit = GaugeMetricFamily(
            "usage_tracker_pool_limit_tokens", "Complimentary pool size.", labels=["pool"]
        )
        for pool, figures in report["pools"].items():
            used.add_metric([pool], figures["used"])
            limit.add_metric([pool], figures["limit"])
        yield from (used, limit)

    def _limits(self, now: int) -> Iterator[Metric]:
        """Spend limits and alerts (USD), the month's spend of their subjects, and whether a
        hard limit enforces: for admins and viewers (the organization's, not a member's)."""
        if not self.access.who.is_staff:
            return
        from usage_tracker.web.api.limits import limits_report

        rows = limits_report(self.state, self.access, now)["limits"]
        amount = GaugeMetricFamily(
            "usage_tracker_limit_usd",
            "A spend limit's or alert's threshold per month (project \"\": the organization).",
            labels=["connection", "kind", "project", "ident"],
        )
        used = GaugeMetricFamily(
            "usage_tracker_limit_used_usd",
            "Billed this UTC month by the subject of a spend limit or alert.",
            labels=["connection", "project"],
        )
        enforcing = GaugeMetricFamily(
            "usage_tracker_limit_enforcing",
            "1 while a hard spend limit stops requests.",
            labels=["connection", "project"],
        )
        subjects = set()
        for r in rows:
            if r["amount_usd"] is None:
                continue
            subject = (printable(r["connection"]), printable(r["project_id"] or ""))
            connection, project = subject
            labels = [connection, r["kind"], project, printable(r["ident"])]
            amount.add_metric(labels, float(r["amount_usd"]))
            if subject not in subjects:
                subjects.add(subject)
                used.add_metric(list(subject), float(r["used_usd"]))
            if r["kind"] == "spend_limit":
                enforcing.add_metric(list(subject), 1 if r["enforcing"] else 0)
        yield from (amount, used, enforcing)

    def _sync(self, now: int) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "usage_tracker_sync_age_seconds",
            "Seconds since the last successful sync of each connection's source.",
            labels=["connection", "source"],
        )
        failing = GaugeMetricFamily(
            "usage_tracker_upstream_error",
            "1 while the last sync of a connection's source failed.",
            labels=["connection", "source"],
        )
        for s in self.state.store.sync_states():
            labels = [printable(s["connection"]), s["source"]]
            if s["last_success_at"] is not None:
                age.add_metric(labels, now - s["last_success_at"])
            failing.add_metric(labels, 1 if s["last_error"] else 0)
        loop = GaugeMetricFamily(
            "usage_tracker_sync_loop_error", "1 while the sync loop itself is failing."
        )
        loop.add_metric([], 1 if self.state.loop.error else 0)
        yield from (age, failing, loop)

    def _alerts(self) -> Iterator[Metric]:
        if self.state.alerts is None:
            return
        counts = self.state.alerts.health()["deliveries"]
        done = CounterMetricFamily(
            "usage_tracker_alert_deliveries",
            "Alert messages delivered (sent) or given up on (failed), since the database began.",
            labels=["status"],
        )
        for status in ("sent", "failed"):
            done.add_metric([status], counts[status])
        waiting = GaugeMetricFamily(
            "usage_tracker_alert_deliveries_pending",
            "Alert messages waiting to be sent, and of those, being retried after a failure.",
            labels=["state"],
        )
        waiting.add_metric(["pending"], counts["pending"])
        waiting.add_metric(["retrying"], counts["retrying"])
        yield from (done, waiting)

    def _actions(self) -> Iterator[Metric]:
        """For admins and viewers, as the limits."""
        if self.state.actions is None or not self.access.who.is_staff:
            return
        states = self.state.actions.health()["states"]
        found = GaugeMetricFamily(
            "usage_tracker_actions",
            "Actions of budget rules by state (proposed, approved, done, failed, dismissed, "
            "resuming, resumed): done counts what is paused or limited now.",
            labels=["state"],
        )
        for state in ("proposed", "approved", "done", "failed", "dismissed", "resuming", "resumed"):
            found.add_metric([state], states.get(state, 0))
        yield found


@router.get("/metrics")
def metrics(request: Request) -> Response:
    state = app_state(request)
    token = state.settings.metrics_token
    header = request.headers.get("authorization", "")
    if token is not None and hmac.compare_digest(header, f"Bearer {token.get_secret_value()}"):
        from usage_tracker.people.access import Principal

        who = Principal("metrics", "viewer", "token", name="metrics scraper")
    else:
        from usage_tracker.web.auth import principal

        who = principal(request)  # SignInRequired → 401 like the API
    registry = CollectorRegistry(auto_describe=False)
    started = time.monotonic()
    registry.register(UsageCollector(state, access(request, who)))
    body = generate_latest(registry)
    elapsed = time.monotonic() - started
    return Response(
        body,
        media_type=CONTENT_TYPE_LATEST,
        headers={"X-Collect-Seconds": f"{elapsed:.3f}"},
    )

"""The simulated organization's limits on OpenAI's contract: its hard spend limit and spend
alerts, each project's, and each project's rate limits per model (the types of the pinned
``openai`` SDK's ``admin.organization`` field for field).

An admin sets limits from what a project usually costs: here each project's is a share of its
billed cost over the 30 days before the limits were first asked for (by its place in the
organization; some projects have none: OpenAI answers 404 for a spend limit that is not set), so
that whatever the day of the month, some are idle, some near and one past. A hard limit enforces
once the month's billed cost of its subject has reached it, as OpenAI's do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from usage_tracker.simulator.http import ApiError
from usage_tracker.simulator.org import Organization

PROJECT_SHARES = (1.5, 0.02, None, 0.4, None)
"""The projects' hard monthly spend limits as shares of their last 30 days' billed cost, in
their order (repeated); None: not set."""
ORGANIZATION_SHARE = 1.5
ORGANIZATION_ALERT_SHARES = (0.5, 1.0)
PROJECT_ALERT_SHARE = 0.8
"""The first project has a spend alert too."""
RATE_LIMITS: tuple[dict[str, Any], ...] = (
    {
        "model": "gpt-5",
        "max_requests_per_1_minute": 500,
        "max_tokens_per_1_minute": 500_000,
        "batch_1_day_max_input_tokens": 1_500_000,
    },
    {
        "model": "gpt-4.1-mini",
        "max_requests_per_1_minute": 5_000,
        "max_tokens_per_1_minute": 2_000_000,
    },
    {
        "model": "gpt-image-1",
        "max_requests_per_1_minute": 50,
        "max_tokens_per_1_minute": 100_000,
        "max_images_per_1_minute": 50,
    },
)


@dataclass
class Limits:
    """What the organization has set, in whole cents as OpenAI keeps them."""

    organization_cents: int | None
    project_cents: dict[str, int] = field(default_factory=dict)
    organization_alerts: list[tuple[str, int]] = field(default_factory=list)
    project_alerts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, org: Organization) -> Limits:
        now = org.now
        usual = org.cost_truth(now - 30 * 86400, now, ("project_id",))
        total = sum(usual.values(), Decimal(0))
        pids = list(org.projects)
        projects = {
            pid: _cents(usual.get((pid,), Decimal(0)) * Decimal(str(share)))
            for i, pid in enumerate(pids)
            if (share := PROJECT_SHARES[i % len(PROJECT_SHARES)]) is not None
        }
        first = usual.get((pids[0],), Decimal(0)) if pids else Decimal(0)
        return cls(
            organization_cents=_cents(total * Decimal(str(ORGANIZATION_SHARE))),
            project_cents=projects,
            organization_alerts=[
                (f"spend_alert_org_{i}", _cents(total * Decimal(str(share))))
                for i, share in enumerate(ORGANIZATION_ALERT_SHARES)
            ],
            project_alerts=(
                {
                    pids[0]: [
                        ("spend_alert_proj_0", _cents(first * Decimal(str(PROJECT_ALERT_SHARE))))
                    ]
                }
                if pids
                else {}
            ),
        )

    def month_spent(self, org: Organization, project_id: str | None) -> Decimal:
        """Billed USD of the organization (or a project) since the UTC month began."""
        now = org.now
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        start = int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp())
        if project_id is None:
            return sum(org.cost_truth(start, now + 1).values(), Decimal(0))
        return org.cost_truth(start, now + 1, ("project_id",)).get((project_id,), Decimal(0))

    # -- answers ----------------------------------------------------------------------------

    def spend_limit(self, org: Organization, project_id: str | None) -> dict[str, Any]:
        cents = (
            self.organization_cents if project_id is None else self.project_cents.get(project_id)
        )
        if project_id is not None:
            written, last = org.stops.limit_now(project_id)
            cents = last if written else cents
        if cents is None:
            where = "organization" if project_id is None else f"project {project_id}"
            raise ApiError(404, f"No spend limit is set for the {where}.", code="not_found")
        enforcing = self.month_spent(org, project_id) * 100 >= cents
        return {
            "object": "organization.spend_limit" if project_id is None else "project.spend_limit",
            "threshold_amount": cents,
            "currency": "USD",
            "interval": "month",
            "enforcement": {"status": "enforcing" if enforcing else "inactive"},
        }

    def spend_alerts(self, project_id: str | None, recipients: list[str]) -> list[dict[str, Any]]:
        alerts = (
            self.organization_alerts
            if project_id is None
            else self.project_alerts.get(project_id, [])
        )
        kind = "organization.spend_alert" if project_id is None else "project.spend_alert"
        return [
            {
                "id": ident,
                "object": kind,
                "threshold_amount": cents,
                "currency": "USD",
                "interval": "month",
                "notification_channel": {"type": "email", "recipients": recipients},
            }
            for ident, cents in alerts
        ]


def _cents(usd: Decimal) -> int:
    """Whole dollars, rounded up, in cents (at least $1): as an admin would type a limit."""
    return max(1, -int(-usd // 1)) * 100


def rate_limits(project_id: str) -> list[dict[str, Any]]:
    return [
        {"object": "project.rate_limit", "id": f"rl-{r['model']}-{project_id[-6:]}", **r}
        for r in RATE_LIMITS
    ]

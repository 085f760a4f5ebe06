"""Every aggregation the product shows, one function per question, all read from the store.

The package's face: each question lives in a module of its own (:mod:`.summary` totals over a
range, :mod:`.charts` usage over time, :mod:`.pools` OpenAI's complimentary pools,
:mod:`.money` billed and estimated cost, :mod:`.forecast`, :mod:`.reconciliation`,
:mod:`.people`, :mod:`.exports` the file formats); this re-exports what the callers use.
"""

from __future__ import annotations

from usage_tracker.reports import money
from usage_tracker.reports.charts import CHART_DAYS, TOKENS, chart_bucket, usage_over_time
from usage_tracker.reports.common import GROUPINGS, ReportError, connections_where, load_names
from usage_tracker.reports.forecast import daily_billed, forecast
from usage_tracker.reports.people import people
from usage_tracker.reports.pools import EVERYONE_ELSE, PoolReport, PoolStatus, pool_rows, pool_usage
from usage_tracker.reports.reconciliation import reconciliation
from usage_tracker.reports.summary import (
    SUMMARY_GROUPS,
    cost_totals,
    keys_of_person,
    keys_of_team,
    summary,
    usage_totals,
)

__all__ = [
    "CHART_DAYS",
    "EVERYONE_ELSE",
    "GROUPINGS",
    "SUMMARY_GROUPS",
    "TOKENS",
    "PoolReport",
    "PoolStatus",
    "ReportError",
    "chart_bucket",
    "connections_where",
    "cost_totals",
    "daily_billed",
    "forecast",
    "keys_of_person",
    "keys_of_team",
    "load_names",
    "money",
    "people",
    "pool_rows",
    "pool_usage",
    "reconciliation",
    "summary",
    "usage_over_time",
    "usage_totals",
]

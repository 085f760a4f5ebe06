"""Usage over time for the charts: the step a range is drawn in and the top series stacked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from usage_tracker.people.names import Names
from usage_tracker.reports.common import DAY, GROUPINGS, HOUR, series_label
from usage_tracker.reports.summary import usage_totals
from usage_tracker.store import Store
from usage_tracker.store.folded import WEEK, period_start


def usage_over_time(
    store: Store,
    names: Names,
    start: int,
    end: int,
    stack: str,
    *,
    where: Mapping[str, Sequence[str]] | None = None,
    series: int = 8,
) -> dict[str, Any]:
    """Tokens per hour (ranges up to two days), per day (up to CHART_DAYS) or per week from
    Monday, stacked by ``stack`` (person or model); the biggest ``series`` are kept and the
    rest summed as "other"."""
    bucket = chart_bucket(start, end)
    step = STEPS[bucket]
    first = period_start(start, WEEK) if bucket == "week" else start - start % step
    labels = list(range(first, end, step))
    if where is None:
        data = _from_folded(store, names, start, end, stack, series=series, per=step)
    else:
        by = "day" if bucket == "week" else bucket  # days, then added into their weeks
        data = _stacked(
            names,
            usage_totals(store, names, start, end, [by, stack], where=where, metrics=TOKENS),
            by,
            stack,
            series,
        )
    points = {s: [0] * len(labels) for s in data}
    for label, per_time in data.items():
        for at, tokens in per_time.items():
            points[label][(at - first) // step] += tokens
    if "other" in points and not any(points["other"]):
        del points["other"]
    return {"bucket": bucket, "labels": labels, "series": points}


TOKENS = ("input_tokens", "output_tokens")
"""What a chart's bar counts (``tokens``): input (cached included) and output."""
CHART_DAYS = 92
"""The longest range whose chart has a bar per day (about three months); weeks beyond."""
STEPS = {"hour": HOUR, "day": DAY, "week": WEEK}


def chart_bucket(start: int, end: int) -> str:
    """The chart's bars over [start, end): hours up to two days, days up to CHART_DAYS,
    weeks (from Monday, UTC) beyond."""
    if end - start <= 2 * DAY:
        return "hour"
    return "day" if end - start <= CHART_DAYS * DAY else "week"


def _top(tokens: Mapping[str, int], series: int) -> list[str]:
    return [s for s, _ in sorted(tokens.items(), key=lambda kv: -kv[1])[:series]]


def _stacked(
    names: Names, rows: Iterable[dict[str, Any]], bucket: str, stack: str, series: int
) -> dict[str, dict[int, int]]:
    """Folded (time, stack) rows as tokens per time of the biggest series and "other"."""
    rows = list(rows)
    by_series: dict[str, int] = {}
    labelled = stack == "api_key"  # rows hold the key's id: its series label is made here
    for row in rows:
        label = series_label(names, stack, row[stack]) if labelled else str(row[stack] or "(none)")
        by_series[label] = by_series.get(label, 0) + row["tokens"]
    top = _top(by_series, series)
    data: dict[str, dict[int, int]] = {s: {} for s in [*top, "other"]}
    for row in rows:
        label = series_label(names, stack, row[stack]) if labelled else str(row[stack] or "(none)")
        into = data[label if label in top else "other"]
        into[row[bucket]] = into.get(row[bucket], 0) + row["tokens"]
    return data


def _from_folded(
    store: Store, names: Names, start: int, end: int, stack: str, *, series: int, per: int
) -> dict[str, dict[int, int]]:
    """Everyone's tokens per hour, day or week (``per``): the biggest series over the range
    from the folded totals, their periods from the folded days (hours: the hourly rows), and
    "other" as each period's total less theirs."""
    grouping = "model" if stack == "model" else "api_key"  # people and teams are keys
    column = GROUPINGS[stack]
    label_of = {}
    by_series: dict[str, int] = {}
    totals = store.folded_sums(start, end, TOKENS, [grouping, "connection"])
    for _connection, value, input_tokens, output_tokens in totals[grouping].rows:
        label = label_of[value] = series_label(names, stack, value)
        by_series[label] = by_series.get(label, 0) + input_tokens + output_tokens
    top = _top(by_series, series)
    shown = {v: label for v, label in label_of.items() if label in top}
    data: dict[str, dict[int, int]] = {s: {} for s in [*top, "other"]}
    other = data["other"]
    # Every usage row is of one connection: their days are every day's total (a row per
    # connection and day, a dozen times fewer than per source).
    every = [value for _connection, value, *_tokens in totals["connection"].rows]
    for row in store.folded_days(start, end, "connection", TOKENS, values=every, per=per):
        other[row["day"]] = other.get(row["day"], 0) + row["input_tokens"] + row["output_tokens"]
    # The top series' values summed per series by the database.
    for row in store.folded_days(start, end, grouping, TOKENS, values=shown, per=per):
        used = row["input_tokens"] + row["output_tokens"]
        into = data[row[column]]
        into[row["day"]] = into.get(row["day"], 0) + used
        other[row["day"]] -= used
    return data

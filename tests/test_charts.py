"""The server-drawn chart: its scale, its bars and its escaping."""

from __future__ import annotations

import re

import pytest

from usage_tracker.web.charts import BOTTOM, TOP, nice_ceiling, stacked_bars

DAY = 86400


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (7, 10), (120, 200), (201, 250), (2_600_000, 5_000_000)],
)
def test_the_scale_ends_on_a_round_number_at_least_the_tallest_bar(
    value: int, ceiling: int
) -> None:
    assert nice_ceiling(value) == ceiling


def test_each_bar_is_its_series_stacked_to_scale_with_a_tooltip() -> None:
    chart = {
        "bucket": "day",
        "labels": [0, DAY, 2 * DAY],
        "series": {"Ann <b>": [100, 0, 50], "other": [100, 200, 0]},
    }
    svg, legend = stacked_bars(chart, label="Tokens per day")
    assert [(s.name, s.css, s.total) for s in legend] == [
        ("Ann <b>", "s0", 150),
        ("other", "other", 300),
    ]
    assert "<b>" not in svg
    assert "Ann &lt;b&gt;" in svg  # names are escaped
    bars = re.findall(
        r'<rect class="(s0|other)" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"%]+)%"', svg
    )
    # The tallest day (200 tokens) on a scale of 200 is the plot's whole height.
    height = BOTTOM - TOP
    expected = [("s0", height / 2), ("other", height / 2), ("other", height), ("s0", height / 4)]
    assert [css for css, _ in bars] == [css for css, _ in expected]
    assert [float(h) for _, h in bars] == pytest.approx([h for _, h in expected], abs=0.001)
    assert "01-01 UTC: 200 tokens" in svg
    assert "01-03 UTC: 50 tokens" in svg
    assert ">250<" not in svg  # the scale is 200: grid values 50, 100, 150, 200
    assert [f">{v}<" in svg for v in (50, 100, 150, 200)] == [True] * 4


def test_a_weekly_bar_says_which_week() -> None:
    monday = 4 * DAY  # 1970-01-05
    chart = {"bucket": "week", "labels": [monday, monday + 7 * DAY], "series": {"x": [3, 4]}}
    svg, _ = stacked_bars(chart, label="Tokens per week")
    assert "week of 01-05 UTC: 3 tokens" in svg
    assert "week of 01-12 UTC: 4 tokens" in svg

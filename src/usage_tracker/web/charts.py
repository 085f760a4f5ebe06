"""The dashboard's chart, drawn on the server as SVG: stacked bars of tokens per hour or day.

Positions are percentages of the drawing, so one SVG fits any width without a script, and
text keeps its size (no stretched viewBox). Colours come from the stylesheet (classes ``s0`` …
``s8``), so the theme applies; each bar carries a ``<title>`` with its figures (the tooltip)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from usage_tracker.web.templating import compact

TOP, BOTTOM = 6.0, 88.0
"""The plot's top and bottom, in percent of the drawing's height (x labels below)."""
TICKS = 6
COLOURS = 9


@dataclass(frozen=True)
class Legend:
    name: str
    css: str
    total: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 2.5, 5 times 10^k at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1
    magnitude: int = 10 ** (len(str(value)) - 1)
    return next(int(s * magnitude) for s in (1, 2, 2.5, 5, 10) if s * magnitude >= value)


def _when(ts: int, bucket: str) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%H:%M") if bucket == "hour" else moment.strftime("%m-%d")


def _pct(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "%"


def stacked_bars(chart: Mapping[str, Any], *, label: str) -> tuple[Markup, list[Legend]]:
    """(the SVG, the legend) of ``reports.usage_over_time``'s answer."""
    labels: Sequence[int] = chart["labels"]
    series: Mapping[str, Sequence[int]] = chart["series"]
    bucket: str = chart["bucket"]
    names = list(series)
    css = {name: "other" if name == "other" else f"s{i % COLOURS}" for i, name in enumerate(names)}
    n = max(1, len(labels))
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=0))
    height = BOTTOM - TOP
    parts = [
        f'<svg class="chart" width="100%" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for k in range(5):  # grid lines and their values, written just above each line
        y = BOTTOM - height * k / 4
        parts.append(f'<line class="grid" x1="0" x2="100%" y1="{_pct(y)}" y2="{_pct(y)}"/>')
        if k:
            parts.append(
                f'<text class="tick" x="2" y="{_pct(y - 1.5)}">{compact(top * k // 4)}</text>'
            )
    for i, at in enumerate(labels):
        x, width = 100 * i / n, 100 * 0.8 / n
        when = ("week of " if bucket == "week" else "") + _when(at, bucket)
        lines = [f"{when} UTC: {totals[i]:,} tokens"] + [
            f"{name}: {series[name][i]:,}" for name in names if series[name][i]
        ]
        parts.append(f"<g><title>{escape(chr(10).join(lines))}</title>")
        parts.append(
            f'<rect class="hit" x="{_pct(x)}" y="{_pct(TOP)}" width="{_pct(100 / n)}" '
            f'height="{_pct(height)}"/>'
        )
        base = BOTTOM
        for name in names:
            value = series[name][i]
            if not value:
                continue
            h = height * value / top
            base -= h
            parts.append(
                f'<rect class="{css[name]}" x="{_pct(x + 10 / n)}" y="{_pct(base)}" '
                f'width="{_pct(width)}" height="{_pct(h)}"/>'
            )
        parts.append("</g>")
    every = max(1, -(-len(labels) // TICKS))
    for i in range(0, len(labels), every):
        x = 100 * (i + 0.5) / n
        parts.append(
            f'<text class="tick" x="{_pct(x)}" y="97%" text-anchor="middle">'
            f"{_when(labels[i], bucket)}</text>"
        )
    parts.append("</svg>")
    legend = [Legend(name, css[name], sum(series[name])) for name in names]
    return Markup("".join(parts)), legend  # noqa: S704 - every text above is escaped

"""The Jinja environment every page shares: templates, filters, and root-relative asset URLs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def utc(ts: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(fmt)


def compact(n: float | int | None) -> str:
    if n is None:
        return "—"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{n:,.0f}"


templates.env.globals["static"] = lambda path: f"/static/{path}"
"""Asset URLs are root-relative, never built from the request's Host header."""
templates.env.filters["utc"] = utc
templates.env.filters["compact"] = compact
templates.env.filters["thousands"] = lambda n: f"{n:,}"
templates.env.filters["usd"] = lambda d: (
    "—" if d is None else f"{'-' if d < 0 else ''}${abs(d):,.2f}"
)

"""How an alert reads: one title, a few plain lines (what, how much, who, a link to the
dashboard view), and the same figures as a JSON payload for machines."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class Firing:
    """One alert that a rule raised. ``dedupe_key`` names the rule, subject, threshold and
    period: an alert with the same key is never raised twice. Of the firings of one ``group``
    raised together (a pool jumping from 40 % to 100 % between two syncs), only the one of the
    highest ``rank`` is sent; the others are recorded as superseded."""

    dedupe_key: str
    rule: str
    kind: str
    period: str
    title: str
    lines: tuple[str, ...]
    payload: dict[str, Any]
    channels: tuple[str, ...] = ()
    """This rule's own Apprise URLs; empty: the default channels."""
    recipient: str = ""
    """An email the owner-email channel sends this alert to as well."""
    group: str = ""
    rank: float = 0

    @property
    def message(self) -> str:
        return "\n".join(self.lines)


def sentence(text: str) -> str:
    """``text`` opening a sentence: its first letter upper-case and nothing else changed (a
    name keeps its capitals, unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def day_label(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def month_label(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m")


def clock(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M UTC")


def tokens(n: float | Decimal) -> str:
    return f"{int(n):,}"


def usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def percent(value: float) -> str:
    return f"{value:.0f} %"


def link(base_url: str, **query: str) -> str:
    """The dashboard view an alert is about."""
    return f"{base_url.rstrip('/')}/?{urlencode({k: v for k, v in query.items() if v})}"

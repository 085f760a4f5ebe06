"""What a provider enforces once an admin has acted: a key made read-only (OpenAI) or inactive
(Anthropic) makes no more usage from that moment, until it is given its access back; a project
whose billed cost this UTC month has reached the hard spend limit written for it makes no more
usage that month.

Each change holds from the simulated moment it is made, so that usage before it stays as it was
and a test sees spend actually stop (and start again on resume). Only limits written through the
API are enforced here: the limits the simulator starts with (see ``openai/limits.py``) describe
an organization as it was found and leave its traffic as generated.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from usage_tracker.simulator.company import Event

PROJECT, KEY = 0, 2
"""Where the project and the key are in an event's dimensions."""


def month_start(ts: int) -> int:
    day = dt.datetime.fromtimestamp(ts, dt.UTC)
    return int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp())


def month_end(ts: int) -> int:
    day = dt.datetime.fromtimestamp(month_start(ts), dt.UTC)
    later = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=dt.UTC)
    return int(later.timestamp())


@dataclass
class Stops:
    """Keys blocked over spans of time, and project limits as written over time."""

    blocked: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    """Key id → [(from, until or None)]: no usage in those spans."""
    limits: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    """Project id → [(from, cents or None)]: the hard limit written at each moment."""
    _cuts: dict[tuple[str, int], list[tuple[int, int | None]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def block(self, key_id: str, at: int) -> None:
        with self._lock:
            spans = self.blocked.setdefault(key_id, [])
            if not spans or spans[-1][1] is not None:
                spans.append((at, None))
            self._cuts.clear()

    def unblock(self, key_id: str, at: int) -> None:
        with self._lock:
            spans = self.blocked.get(key_id, [])
            if spans and spans[-1][1] is None:
                spans[-1] = (spans[-1][0], at)
            self._cuts.clear()

    def is_blocked(self, key_id: str, at: int) -> bool:
        return any(
            start <= at and (until is None or at < until)
            for start, until in self.blocked.get(key_id, ())
        )

    def set_limit(self, project_id: str, at: int, cents: int | None) -> None:
        with self._lock:
            self.limits.setdefault(project_id, []).append((at, cents))
            self._cuts.clear()

    def limit_now(self, project_id: str) -> tuple[bool, int | None]:
        """(whether a limit was ever written, the one written last)."""
        written = self.limits.get(project_id)
        return (True, written[-1][1]) if written else (False, None)

    def refuses(self, event: Event, hours: Callable[[int, int], Iterable[Event]]) -> bool:
        """Whether ``event`` would have been refused. ``hours(t0, t1)`` gives the events as
        generated (before any stop), in time order."""
        if not self.blocked and not self.limits:
            return False
        if self.is_blocked(str(event.dims[KEY]), event.ts):
            return True
        project = str(event.dims[PROJECT])
        if project not in self.limits:
            return False
        spans = self._refusals(project, month_start(event.ts), hours)
        return any(
            start <= event.ts and (until is None or event.ts < until) for start, until in spans
        )

    def _refusals(
        self, project: str, month: int, hours: Callable[[int, int], Iterable[Event]]
    ) -> list[tuple[int, int | None]]:
        """When the project's usage is refused in the month that begins at ``month``: from the
        first moment its billed cost so far has reached the limit in force, until a higher
        limit (or none) is written."""
        cached = self._cuts.get((project, month))
        if cached is not None:
            return cached
        changes = self.limits.get(project, [])
        spent = 0
        spans: list[tuple[int, int | None]] = []
        for event in hours(month, month_end(month)):
            if str(event.dims[PROJECT]) != project or self.is_blocked(
                str(event.dims[KEY]), event.ts
            ):
                continue
            cents = _in_force(changes, event.ts)
            refused = cents is not None and spent >= cents * 10_000
            open_span = bool(spans) and spans[-1][1] is None
            if refused and not open_span:
                spans.append((event.ts, None))
            elif not refused and open_span:
                spans[-1] = (spans[-1][0], event.ts)
            if not refused and not event.complimentary:
                spent += sum(c.micros for c in event.costs)
        with self._lock:
            self._cuts[(project, month)] = spans
        return spans


def _in_force(changes: list[tuple[int, int | None]], at: int) -> int | None:
    cents: int | None = None
    for start, value in changes:
        if start <= at:
            cents = value
    return cents

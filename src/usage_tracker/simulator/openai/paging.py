"""How the simulated OpenAI API reads a usage or costs request and shapes its pages: the window
of buckets, opaque cursors, ``group_by`` and filters, and list paging."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usage_tracker.providers.openai.contract import (
    COSTS_GROUP_BY,
    COSTS_OBJECT,
    WIDTH_SECONDS,
    Source,
    buckets_stop,
)
from usage_tracker.providers.records import DIMENSIONS
from usage_tracker.simulator.company import Event
from usage_tracker.simulator.http import ApiError, Query


@dataclass(frozen=True)
class Window:
    """The buckets one request covers: from ``start`` (or the cursor) for ``limit`` buckets."""

    start: int
    stop: int
    step: int
    first: int
    limit: int
    fingerprint: str

    @classmethod
    def parse(
        cls,
        query: Query,
        defaults: Mapping[str, int],
        maxima: Mapping[str, int],
        widths: tuple[str, ...],
        now: int,
    ) -> Window:
        start = query.integer("start_time", required=True)
        assert start is not None
        end = query.integer("end_time")
        if start < 0:
            raise ApiError(
                400, "Invalid value for 'start_time': must not be negative.", "start_time"
            )
        if end is not None and end <= start:
            raise ApiError(
                400, "Invalid value for 'end_time': must be after start_time.", "end_time"
            )
        width = query.text("bucket_width") or "1d"
        if width not in widths:
            raise ApiError(
                400,
                f"Invalid value for 'bucket_width': expected one of {', '.join(widths)}.",
                "bucket_width",
            )
        limit = query.integer("limit")
        if limit is None:
            limit = defaults[width]
        if not 1 <= limit <= maxima[width]:
            raise ApiError(
                400,
                f"Invalid value for 'limit': must be between 1 and {maxima[width]} "
                f"for bucket_width={width}.",
                "limit",
            )
        step = WIDTH_SECONDS[width]
        stop = buckets_stop(start, end, step, now)
        fingerprint = f"{start}:{end}:{width}"
        first = start
        cursor = query.text("page")
        if cursor:
            first = decode_cursor(cursor, fingerprint)
        return cls(start, stop, step, first, limit, fingerprint)

    def buckets(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        t = self.first
        while t < self.stop and len(out) < self.limit:
            out.append((t, min(t + self.step, self.stop)))
            t += self.step
        return out

    def page(self, buckets: list[dict[str, Any]]) -> dict[str, Any]:
        after = self.first + len(buckets) * self.step
        more = after < self.stop
        return {
            "object": "page",
            "data": buckets,
            "has_more": more,
            "next_page": encode_cursor(after, self.fingerprint) if more else None,
        }


def encode_cursor(next_start: int, fingerprint: str) -> str:
    """The simulator's cursor: opaque to clients, like OpenAI's."""
    return "page_" + base64.urlsafe_b64encode(f"{next_start}|{fingerprint}".encode()).decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.removeprefix("page_").encode()).decode()
        start, seen = raw.split("|", 1)
        if seen == fingerprint:
            return int(start)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ApiError(400, "Invalid value for 'page': not a cursor for this query.", "page")


def group_by_of(query: Query, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = query.array("group_by")
    for value in values:
        if value not in allowed:
            raise ApiError(
                400,
                f"Invalid value for 'group_by': '{value}'. "
                f"Supported values are: {', '.join(allowed)}.",
                "group_by",
            )
    return tuple(dict.fromkeys(values))


def filters_of(query: Query, spec: Source) -> dict[str, set[object]]:
    filters: dict[str, set[object]] = {
        dim: set(query.array(p))
        for p, dim in spec.filters.items()
        if p != "batch" and query.array(p)
    }
    if "batch" in spec.filters and (batch := query.boolean("batch")) is not None:
        filters["batch"] = {batch}
    return filters


def passes(event: Event, filters: Mapping[str, set[object]]) -> bool:
    return all(event.dims[DIMENSIONS.index(d)] in allowed for d, allowed in filters.items())


def usage_results(
    spec: Source, events: list[Event], group_by: tuple[str, ...]
) -> list[dict[str, Any]]:
    rows: dict[tuple[object, ...], dict[str, int]] = {}
    for event in events:
        key = tuple(
            event.dims[DIMENSIONS.index(d)] if d in group_by else None for d in spec.group_by
        )
        row = rows.setdefault(key, dict.fromkeys(spec.metrics, 0))
        for name, value in event.metrics:
            row[name] += value
    return [
        {"object": spec.object, **metrics, **dict(zip(spec.group_by, key, strict=True))}
        for key, metrics in rows.items()
    ]


def cost_result(
    key: tuple[object, ...], row: list[Any], group_by: tuple[str, ...]
) -> dict[str, Any]:
    micros, quantity, unit = row
    by_item = "line_item" in group_by
    return {
        "object": COSTS_OBJECT,
        "amount": {"value": micros / 1_000_000, "currency": "usd"},
        **dict(zip(COSTS_GROUP_BY, key, strict=True)),
        "quantity": quantity if by_item else None,
        "quantity_unit": (unit or None) if by_item else None,
    }


def bucket_json(start: int, end: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": end, "results": results}


def list_page(query: Query, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit = query.integer("limit") or 20
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid value for 'limit': must be between 1 and 100.", "limit")
    after = query.text("after")
    if after:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise ApiError(
                400, f"Invalid value for 'after': '{after}' is not in this list.", "after"
            )
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }

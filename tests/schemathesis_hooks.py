"""Rules the API enforces that OpenAPI cannot express, taught to schemathesis's generator (loaded
through SCHEMATHESIS_HOOKS by test_api_schema.py). Each is also stated in the parameter's
description in /openapi.json, and each is answered 400 with the error body when broken."""

from __future__ import annotations

from typing import Any

import schemathesis

from usage_tracker.providers.openai.contract import MAX_LIMIT, SOURCES


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if v is not None]


def obeys_the_rules(query: dict[str, Any] | None) -> bool:
    if not query:
        return True
    start, end = _int(query.get("start_time")), _int(query.get("end_time"))
    if start is not None and end is not None and end <= start:
        return False  # "end_time must be after start_time"
    width, limit = query.get("bucket_width", "1d"), _int(query.get("limit"))
    if limit is not None and width in MAX_LIMIT and limit > MAX_LIMIT[width]:
        return False  # "at most 31 (1d), 168 (1h) or 1440 (1m)"
    source = query.get("source", "completions")
    if source in SOURCES:
        allowed = {*SOURCES[source].group_by, "none", ""}
        groups = [g.strip() for v in _values(query.get("group_by")) for g in v.split(",")]
        if not set(groups) <= allowed:
            return False  # "each must apply to source"
    # "page: next_page of the previous page": cursors are signed, so an invented one is a 400.
    return not query.get("page")


@schemathesis.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    """The fuzzing phase's queries."""
    return obeys_the_rules(query)


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """The coverage phase's cases: the positive ones must obey the rules; negative ones are
    wrong on purpose and stay."""
    meta = getattr(case, "meta", None)
    positive = meta is None or meta.generation.mode.is_positive
    return not positive or obeys_the_rules(case.query)

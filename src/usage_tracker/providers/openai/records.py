"""OpenAI's JSON objects as the common records of :mod:`usage_tracker.providers.records`.

Tolerant parsers: unknown fields are ignored, missing optional fields become ``None`` (counters
that are absent are left out), and a field of the wrong type is a
:class:`~usage_tracker.providers.errors.BadUpstreamResponseError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from usage_tracker.providers.errors import BadUpstreamResponseError
from usage_tracker.providers.openai.contract import COSTS_GROUP_BY
from usage_tracker.providers.records import (
    DIMENSIONS,
    METRICS,
    ApiKey,
    CostResult,
    Limit,
    Project,
    UsageResult,
    User,
)


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadUpstreamResponseError(f"field {key!r} should be a string, got {type(value).__name__}")


def _opt_int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadUpstreamResponseError(f"field {key!r} should be an integer, got {value!r}")
    return int(value)


def _decimal(value: Any, key: str) -> Decimal:
    # Floats go through repr so 0.06 stays 0.06 rather than 0.0599999999999999977795...
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadUpstreamResponseError(f"field {key!r} should be a number, got {value!r}")
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise BadUpstreamResponseError(f"field {key!r} is not a number: {value!r}") from None


def _dimension(raw: Mapping[str, Any], name: str) -> str | bool | None:
    value = raw.get(name)
    if value is None or isinstance(value, str | bool):
        return value
    raise BadUpstreamResponseError(f"dimension {name!r} has an unexpected value {value!r}")


def parse_usage_result(source: str, start: int, end: int, raw: Mapping[str, Any]) -> UsageResult:
    """A usage result; counters that are absent are left out (not zero) of ``metrics``."""
    # The checks of _opt_int and _dimension inline for what is nearly always so (a sync reads
    # half a million of these a year): an int counter, a string or absent dimension; anything
    # else goes through them, to be taken or refused with its reason.
    metrics = {
        m: v if type(v) is int else (_opt_int(raw, m) or 0)
        for m in METRICS
        if (v := raw.get(m)) is not None
    }
    dims = tuple(
        v if v is None or type(v) is str else _dimension(raw, d)
        for d in DIMENSIONS
        for v in (raw.get(d),)
    )
    return UsageResult(source, start, end, dims, metrics)


def parse_cost_result(start: int, end: int, raw: Mapping[str, Any]) -> CostResult:
    # As parse_usage_result: what is nearly always so (a string or absent id, a float amount)
    # inline; anything else goes through the checks that take or refuse it with its reason.
    amount = raw.get("amount") or {}
    if not isinstance(amount, Mapping):
        raise BadUpstreamResponseError("field 'amount' should be an object")
    value = amount.get("value", 0)
    currency = amount.get("currency")
    quantity = raw.get("quantity")
    get = raw.get
    ids = [get(k) for k in COSTS_GROUP_BY]
    if any(v is not None and type(v) is not str for v in ids):
        ids = [_opt_str(raw, k) for k in COSTS_GROUP_BY]  # refused, with the field's name
    unit = get("quantity_unit")
    project_id, line_item, api_key_id = ids
    return CostResult(
        start,
        end,
        project_id,
        line_item,
        api_key_id,
        Decimal(repr(value)) if type(value) is float else _decimal(value, "amount.value"),
        (currency if type(currency) is str else _opt_str(amount, "currency")) or "usd",
        None if quantity is None else _decimal(quantity, "quantity"),
        unit if unit is None or type(unit) is str else _opt_str(raw, "quantity_unit"),
    )


def parse_project(raw: Mapping[str, Any]) -> Project:
    return Project(
        id=_opt_str(raw, "id") or _missing("project id"),
        name=_opt_str(raw, "name"),
        created_at=_opt_int(raw, "created_at"),
        archived_at=_opt_int(raw, "archived_at"),
        status=_opt_str(raw, "status"),
    )


def parse_api_key(project_id: str, raw: Mapping[str, Any]) -> ApiKey:
    owner = raw.get("owner") or {}
    owner_type = _opt_str(owner, "type")
    who = owner.get(owner_type or "", None) or {}
    if not isinstance(who, Mapping):
        raise BadUpstreamResponseError("field 'owner' has an unexpected shape")
    return ApiKey(
        id=_opt_str(raw, "id") or _missing("API key id"),
        project_id=project_id,
        name=_opt_str(raw, "name"),
        redacted_value=_opt_str(raw, "redacted_value"),
        created_at=_opt_int(raw, "created_at"),
        last_used_at=_opt_int(raw, "last_used_at"),
        owner_type=owner_type,
        owner_id=_opt_str(who, "id"),
        owner_name=_opt_str(who, "name"),
        owner_email=_opt_str(who, "email"),
    )


def parse_user(raw: Mapping[str, Any]) -> User:
    return User(
        id=_opt_str(raw, "id") or _missing("user id"),
        name=_opt_str(raw, "name"),
        email=_opt_str(raw, "email"),
        role=_opt_str(raw, "role"),
    )


def _missing(what: str) -> str:
    raise BadUpstreamResponseError(f"{what} is missing")


def parse_spend_limit(project_id: str | None, raw: Mapping[str, Any]) -> Limit:
    """An organization's or a project's hard spend limit (threshold in cents)."""
    enforcement = raw.get("enforcement") or {}
    if not isinstance(enforcement, Mapping):
        raise BadUpstreamResponseError("field 'enforcement' should be an object")
    return Limit(
        kind="spend_limit",
        project_id=project_id,
        ident="spend_limit",
        amount_usd=_cents(raw, "threshold_amount"),
        interval=_opt_str(raw, "interval"),
        enforcing=_opt_str(enforcement, "status") == "enforcing",
    )


def parse_spend_alert(project_id: str | None, raw: Mapping[str, Any]) -> Limit:
    return Limit(
        kind="spend_alert",
        project_id=project_id,
        ident=_opt_str(raw, "id") or _missing("spend alert id"),
        amount_usd=_cents(raw, "threshold_amount"),
        interval=_opt_str(raw, "interval"),
    )


def parse_rate_limit(project_id: str, raw: Mapping[str, Any]) -> Limit:
    model = _opt_str(raw, "model") or _missing("rate limit model")
    figures = {
        name: value
        for name in raw
        if name.startswith(("max_", "batch_")) and (value := _opt_int(raw, name)) is not None
    }
    return Limit(
        kind="rate_limit", project_id=project_id, ident=model, model=model, figures=figures
    )


def _cents(raw: Mapping[str, Any], key: str) -> Decimal:
    value = _opt_int(raw, key)
    if value is None:
        return Decimal(_missing(key))
    return Decimal(value) / 100

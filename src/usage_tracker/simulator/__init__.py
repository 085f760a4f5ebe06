"""A simulated OpenAI organization behind the real admin API contract, for the demo and tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from usage_tracker.simulator.openai import API_VERSIONS, CURRENT_API, FAULT_KINDS, Faults, Simulator
from usage_tracker.simulator.org import Organization
from usage_tracker.simulator.scale import Size

DEFAULT_ADMIN_KEY = "sk-admin-simulator"


def build(
    *,
    seed: int = 1,
    days: int = 90,
    clock: Callable[[], float] = time.time,
    admin_key: str = DEFAULT_ADMIN_KEY,
    faults: Faults | None = None,
    late_hours: int = 0,
    scope_error_style: str = "2026",
    size: Size | None = None,
    hostile_names: bool = False,
    api_version: str = CURRENT_API,
) -> Simulator:
    """A simulator app over a fresh synthetic organization (of ``size``, for benchmarks; with
    ``hostile_names``, named as a hostile member would name things)."""
    org = Organization(
        seed=seed,
        days=days,
        clock=clock,
        late_hours=late_hours,
        size=size,
        hostile_names=hostile_names,
    )
    return Simulator(
        org,
        admin_key=admin_key,
        faults=faults,
        scope_error_style=scope_error_style,
        api_version=api_version,
    )


__all__ = [
    "API_VERSIONS",
    "CURRENT_API",
    "DEFAULT_ADMIN_KEY",
    "FAULT_KINDS",
    "Faults",
    "Organization",
    "Simulator",
    "Size",
    "build",
]

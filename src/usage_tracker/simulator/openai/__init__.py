"""The simulated OpenAI admin API over the synthetic company."""

from __future__ import annotations

from usage_tracker.simulator.openai.app import API_VERSIONS, CURRENT_API, Simulator
from usage_tracker.simulator.openai.faults import FAULT_KINDS, Faults

__all__ = ["API_VERSIONS", "CURRENT_API", "FAULT_KINDS", "Faults", "Simulator"]

"""The simulated Anthropic Admin API over the synthetic company."""

from __future__ import annotations

from usage_tracker.simulator.anthropic.app import DEFAULT_ADMIN_KEY, AnthropicSimulator
from usage_tracker.simulator.anthropic.org import AnthropicOrganization

__all__ = ["DEFAULT_ADMIN_KEY", "AnthropicOrganization", "AnthropicSimulator"]

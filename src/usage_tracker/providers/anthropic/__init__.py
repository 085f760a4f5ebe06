"""Anthropic's Admin API through the official SDK: usage, cost and names as the common records."""

from __future__ import annotations

from usage_tracker.providers.anthropic.client import AnthropicClient

__all__ = ["AnthropicClient"]

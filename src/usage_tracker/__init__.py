"""OpenAI Usage Tracker: who used what in a shared OpenAI organization."""

from __future__ import annotations

__version__ = "0.1.0"

"""OpenAI's Organization APIs: the client (:mod:`.client`), what the endpoints accept and return
(:mod:`.contract`), its JSON as the common records (:mod:`.records`) and its daily
complimentary-token pools (:mod:`.pools`), which are OpenAI's alone."""

from __future__ import annotations

from usage_tracker.providers.openai.client import AdminClient, RetryPolicy

__all__ = ["AdminClient", "RetryPolicy"]

"""The JSON API (``/api/…``), one module per concern, all on the router of :mod:`.common` (its
prefix, error body and the once-each rule): :mod:`.usage` (the original's contract),
:mod:`.summary` (totals, reconciliation, forecast, exports), :mod:`.tiers` (OpenAI's pools),
:mod:`.limits`, :mod:`.actions`, :mod:`.statements` and :mod:`.health`. Importing a module adds
its routes; they are added in that order, which is the order of the OpenAPI document."""

from __future__ import annotations

from importlib import import_module

from usage_tracker.web.api.common import router

for _concern in ("usage", "summary", "tiers", "limits", "actions", "statements", "health"):
    import_module(f"{__name__}.{_concern}")

__all__ = ["router"]

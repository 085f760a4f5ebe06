"""The web layer: JSON API, dashboard page, sign-in and headers."""

from __future__ import annotations

from usage_tracker.web.app import create_app

__all__ = ["create_app"]

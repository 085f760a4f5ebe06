"""Reading the user's JSON files with errors that name the file, line and column."""

from __future__ import annotations

import json
from typing import Any


def parse_json_object(text: str, origin: str, what: str = "a JSON object") -> dict[str, Any]:
    """The JSON object in ``text``; a ValueError says ``origin, line L, column C: problem``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{origin}, line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{origin}, line 1, column 1: expected {what}")
    return data

"""Opaque page cursors: the next bucket start, bound to the query that made it."""

from __future__ import annotations

import base64


class CursorError(ValueError):
    """The cursor was not made by this query."""


def encode_cursor(next_start: int, fingerprint: str) -> str:
    return "page_" + base64.urlsafe_b64encode(f"{next_start}|{fingerprint}".encode()).decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.removeprefix("page_").encode()).decode()
        start, seen = raw.split("|", 1)
        if seen != fingerprint:
            raise CursorError("the cursor belongs to another query")
        return int(start)
    except (ValueError, UnicodeDecodeError):
        raise CursorError("not a cursor for this query") from None

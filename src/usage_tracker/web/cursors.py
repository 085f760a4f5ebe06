"""Opaque page cursors: a position, bound to the query that made it and signed, so that a
forged or altered cursor is refused instead of trusted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


class CursorError(ValueError):
    """The cursor was not made by this server for this query."""


class CursorSigner:
    """Signs cursors with a key every replica shares: derived from ``secret`` (one-way), or
    random for this process when there is none."""

    def __init__(self, secret: str | None = None) -> None:
        if secret:
            self._key = hmac.new(secret.encode(), b"usage-tracker page cursor", "sha256").digest()
        else:
            self._key = secrets.token_bytes(32)

    def _tag(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, position: str, fingerprint: str) -> str:
        payload = f"{position}|{fingerprint}".encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"page_{body}.{self._tag(payload)}"

    def decode(self, cursor: str, fingerprint: str) -> str:
        """The position in ``cursor``; CursorError unless this server made it for this query."""
        try:
            body, tag = cursor.removeprefix("page_").split(".", 1)
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            raise CursorError("not a cursor of this server") from None
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise CursorError("not a cursor of this server, or altered")
        position, _, seen = payload.decode().partition("|")
        if seen != fingerprint:
            raise CursorError("the cursor belongs to another query")
        return position

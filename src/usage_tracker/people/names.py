"""Display names: the mapping file ``{"key_id": "Name"}`` over what OpenAI knows of each key.

The file is re-read when it changes. A malformed file is reported (file, line, column) and the
last good mapping stays in use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usage_tracker.text.documents import parse_json_object

log = logging.getLogger(__name__)


class KeyMappings:
    """The mapping file, reloaded when its modification time or size changes.

    ``error`` says in words what is wrong with it (unreadable, malformed, deleted); it names
    the file, never its directory, since /api/health shows it without sign-in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._origin = f"KEY_MAPPINGS_FILE {path.name}"
        self._mapping: dict[str, str] = {}
        self._stamp: tuple[float, int] | None = None
        self._seen = False
        self._lock = threading.Lock()

    def current(self) -> dict[str, str]:
        with self._lock:
            self._reload_if_changed()
            return dict(self._mapping)

    def stamp(self) -> tuple[float, int] | None:
        """Changes whenever the file does (None: no file): what cached names are keyed by."""
        with self._lock:
            self._reload_if_changed()
            return self._stamp

    def _reload_if_changed(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._seen and self._stamp is not None:
                self.error = (
                    f"{self._origin} was deleted: its names are no longer used (OpenAI's "
                    "names are shown instead). Restore the file to bring them back."
                )
                log.warning("key mappings: %s", self.error)
            self._mapping, self._stamp = {}, None
            return
        except OSError as e:
            self._fail(f"{self._origin}: cannot read it: {e.strerror}")
            return
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
            self._fail(f"{self._origin}: cannot read it: {reason}")
            return
        try:
            self._mapping = parse_mappings(text, self._origin)
            self._seen, self.error = True, None
        except ValueError as e:
            self._fail(str(e))

    def _fail(self, problem: str) -> None:
        self.error = f"{problem}; the last good mapping stays in use"
        log.error("key mappings: %s", self.error)


def parse_mappings(text: str, origin: str) -> dict[str, str]:
    """``{"key_id": "Name", …}``; a ValueError names ``origin``, line and column otherwise."""
    data = parse_json_object(text, origin, "an object of key id to name")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{origin}: the name of {bad[0]!r} is not a string")
    return {str(k): v.strip() for k, v in data.items() if v.strip()}


@dataclass(frozen=True)
class Names:
    """Names for ids, as of one moment: what OpenAI said, the mapping file on top, and what
    admins said on the People page on top of both."""

    keys: Mapping[str, Mapping[str, Any]]
    users: Mapping[str, Mapping[str, Any]]
    projects: Mapping[str, Mapping[str, Any]]
    mapping: Mapping[str, str]
    owners: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """key id → {"person", "email"}: the People page's assignments."""
    connections: Mapping[str, str] = field(default_factory=dict)
    """connection name → its provider (``openai``, ``anthropic``)."""

    def connection(self, key_id: str) -> str | None:
        """The connection a key belongs to (None: no key, or a key never listed)."""
        connection = self.keys.get(key_id, {}).get("connection") if key_id else None
        return str(connection) if connection else None

    def provider(self, connection: str | None) -> str | None:
        return self.connections.get(connection) if connection else None

    def person(self, key_id: str) -> str:
        """Who a key stands for: the People page, else the mapping file, else its owner's
        name or email as OpenAI reports it, else a service account's (the key's) name, else
        its id."""
        if not key_id:
            return "(no key)"
        if key_id in self.owners:
            return str(self.owners[key_id]["person"])
        if key_id in self.mapping:
            return self.mapping[key_id]
        key = self.keys.get(key_id, {})
        return str(key.get("owner_name") or key.get("owner_email") or key.get("name") or key_id)

    def email(self, key_id: str) -> str | None:
        """The email of a key's person: the People page's, else the owner's from OpenAI."""
        if key_id in self.owners:
            email = self.owners[key_id].get("email")
            return str(email) if email else None
        email = self.keys.get(key_id, {}).get("owner_email")
        return str(email) if email else None

    def key(self, key_id: str) -> str:
        if not key_id:
            return "(no key)"
        return str(self.keys.get(key_id, {}).get("name") or key_id)

    def user(self, user_id: str) -> str:
        if not user_id:
            return "(no user)"
        user = self.users.get(user_id, {})
        return str(user.get("name") or user.get("email") or user_id)

    def project(self, project_id: str) -> str:
        if not project_id:
            return "(no project)"
        return str(self.projects.get(project_id, {}).get("name") or project_id)

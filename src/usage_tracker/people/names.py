"""Display names and teams: the mapping file over what the providers know of each key.

The mapping file is the original's ``{"key_id": "Name"}``, or richer::

    {
      "key_abc": "Jane Smith",
      "key_svc": {"name": "Build bot", "team": "Platform"},   # a key's own team (shared keys)
      "people": {"Jane Smith": {"team": "Platform"}},        # a person's team
      "projects": {"proj_abc": {"team": "Research"}},        # its keys' team by default
      "teams": {"Platform": {"cost_centre": "CC-4100"}}      # a team's cost centre
    }

A key's team is its own, else its person's, else its project's, else none. The file is re-read
when it changes. A malformed file is reported (file, line, column) and the last good mapping
stays in use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usage_tracker.text.documents import parse_json_object, position

NO_TEAM = "(no team)"
SECTIONS = ("people", "projects", "teams")
"""The mapping file's sections beside key ids (no provider's key id is one of these)."""


@dataclass(frozen=True)
class Teams:
    """Who belongs to which team: the mapping file's, with the People page's over its people
    and the OpenID provider's (by email) under them."""

    keys: Mapping[str, str] = field(default_factory=dict)
    """key id → its own team (a service account's, a shared key's)."""
    people: Mapping[str, str] = field(default_factory=dict)
    """person (as displayed) → team."""
    projects: Mapping[str, str] = field(default_factory=dict)
    """project id → the team of its keys that have none of their own or of their person's."""
    cost_centres: Mapping[str, str] = field(default_factory=dict)
    """team → its cost centre code."""
    emails: Mapping[str, str] = field(default_factory=dict)
    """email → team, as the OpenID provider's team claim said at sign-in."""


@dataclass(frozen=True)
class Mappings:
    """What the mapping file says: names of keys, and teams."""

    names: Mapping[str, str] = field(default_factory=dict)
    teams: Teams = field(default_factory=Teams)


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
        self._mapping = Mappings()
        self._stamp: tuple[float, int] | None = None
        self._seen = False
        self._lock = threading.Lock()

    def current(self) -> Mappings:
        with self._lock:
            self._reload_if_changed()
            return self._mapping

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
            self._mapping, self._stamp = Mappings(), None
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


def parse_mappings(text: str, origin: str) -> Mappings:
    """The mapping file's names and teams (see the module); a ValueError names ``origin``, the
    line and the column of what is wrong."""
    data = parse_json_object(text, origin, "an object of key id to name")

    def wrong(path: list[str], problem: str) -> ValueError:
        return ValueError(f"{origin}{position(text, path)}: {problem}")

    def team_of(path: list[str], value: object, *, named: bool) -> tuple[str | None, str | None]:
        """(name, team) of an entry: a string (a name, or a team where ``named`` is False) or
        an object with ``name`` (keys only) and ``team``."""
        if isinstance(value, str):
            return (value.strip() or None, None) if named else (None, value.strip() or None)
        allowed = {"name", "team"} if named else {"team"}
        if not isinstance(value, dict) or not set(value) <= allowed:
            fields = " and ".join(f'"{a}"' for a in sorted(allowed))
            raise wrong(path, f"expected a string or an object with {fields}")
        found = {}
        for part in allowed:
            if part in value and not isinstance(value[part], str):
                raise wrong([*path, part], f"the {part} is not a string")
            found[part] = str(value.get(part) or "").strip() or None
        return found.get("name"), found.get("team")

    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for key, value in data.items():
        if key in SECTIONS:
            continue
        name, team = team_of([key], value, named=True)
        if name:
            names[str(key)] = name
        if team:
            keys[str(key)] = team
    sections: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            raise wrong([section], f'"{section}" is not an object')
        sections[section] = {}
        for ident, value in entries.items():
            if section == "teams":
                if not isinstance(value, dict) or not set(value) <= {"cost_centre"}:
                    raise wrong([section, ident], 'expected an object with "cost_centre"')
                code = value.get("cost_centre")
                if code is not None and not isinstance(code, str):
                    raise wrong([section, ident, "cost_centre"], "the cost centre is not a string")
                if code and code.strip():
                    sections[section][str(ident)] = code.strip()
                continue
            _, team = team_of([section, ident], value, named=False)
            if team:
                sections[section][str(ident)] = team
    return Mappings(
        names=names,
        teams=Teams(
            keys=keys,
            people=sections["people"],
            projects=sections["projects"],
            cost_centres=sections["teams"],
        ),
    )


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
    teams: Teams = field(default_factory=Teams)
    _team_of: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Each key's team, once found (a report asks for every key's, several times)."""

    def team(self, key_id: str) -> str:
        """The team a key's usage and cost count for: the key's own (the mapping file), else its
        person's (the People page, else the mapping file, else the OpenID provider's claim by
        their email), else its project's, else :data:`NO_TEAM`."""
        found = self._team_of.get(key_id)
        if found is None:
            found = self._team_of[key_id] = self._find_team(key_id)
        return found

    def _find_team(self, key_id: str) -> str:
        if not key_id:
            return NO_TEAM
        teams = self.teams
        found = teams.keys.get(key_id) or teams.people.get(self.person(key_id))
        if not found and teams.emails:
            found = teams.emails.get((self.email(key_id) or "").lower())
        if found:
            return found
        project = self.keys.get(key_id, {}).get("project_id")
        return teams.projects.get(str(project or ""), NO_TEAM)

    def person_team(self, person: str, email: str | None = None) -> str | None:
        """The team a person is in (the People page, the mapping file, the provider's claim),
        whatever their keys' own or projects' teams."""
        teams = self.teams
        return teams.people.get(person) or teams.emails.get((email or "").lower())

    def cost_centre(self, team: str) -> str | None:
        return self.teams.cost_centres.get(team)

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

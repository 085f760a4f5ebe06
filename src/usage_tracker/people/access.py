"""Who may see what: roles, the signed-in principal, the scope of data it may read, password
hashes (argon2id) and API tokens. Pure rules; the web layer applies them and
the store keeps the rows.

Roles: ``admin`` (everything, including accounts and tokens), ``viewer`` (all usage, changes
nothing), ``member`` (only the usage of their own keys: those whose owner email, as OpenAI
reports it, is theirs).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from usage_tracker.people.scope import EVERYTHING, Scope

Role = Literal["admin", "viewer", "lead", "member"]
ROLES: tuple[Role, ...] = ("admin", "viewer", "lead", "member")
"""An admin sees and changes everything; a viewer sees everything; a lead sees their team's
keys and their own; a member their own keys."""
TOKEN_PREFIX = "ut_"  # noqa: S105 - the visible prefix of every API token, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``via``: ``none`` (no sign-in), ``header``, ``session`` or ``token``."""

    email: str
    role: Role
    via: str
    name: str | None = None
    csrf: str | None = None
    """The session's CSRF token (sessions only: cookies are sent by browsers on their own)."""
    team: str | None = None
    """A lead's team."""

    @property
    def label(self) -> str:
        return self.name or self.email

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_staff(self) -> bool:
        """Sees the whole organization (admins and viewers)."""
        return self.role in ("admin", "viewer")

    def scope(
        self,
        key_owners: Iterable[tuple[str, str | None]],
        team_of: Callable[[str], str] | None = None,
    ) -> Scope:
        """All keys; for a member the keys (id, owner email) whose owner is this email; for a
        lead those and the keys of their team (``team_of`` says a key's)."""
        if self.is_staff:
            return EVERYTHING
        mine = self.email.lower()
        leads = self.team if self.role == "lead" and team_of is not None else None
        return Scope(
            frozenset(
                k
                for k, owner in key_owners
                if (owner or "").lower() == mine
                or (leads is not None and team_of is not None and team_of(k) == leads)
            )
        )


def normal_email(email: str) -> str:
    """Emails compare case-insensitively; a ValueError when it is not one."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email):
        raise ValueError(f"{email!r} is not an email address")
    return email


# -- secrets that are only ever stored hashed ------------------------------------------------


def digest(value: str) -> str:
    """SHA-256 of a random token (session or API token): enough for 256-bit random values."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise ValueError("a password needs at least 10 characters")
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def spend_verification_time(password: str) -> None:
    """Verify against a throwaway hash, so that an unknown email takes as long as a wrong
    password (no account enumeration by timing)."""
    password_matches(_dummy_hash(), password)

"""The errors the upstream client raises. Each message says what to do, and none holds the key.

::

    UpstreamError
    ├── AdminKeyError               the key itself is the problem; retrying will not help
    │   ├── InvalidAdminKeyError    401 invalid_api_key: unknown or mistyped key
    │   │   └── RevokedAdminKeyError  401: the key was valid once and has been revoked
    │   └── NotAdminKeyError        401/403 "Missing scopes: api.usage.read": a project key,
    │                               or an admin key without the usage scope
    ├── RateLimitedError            429 still returned after every retry
    ├── UpstreamUnavailableError    5xx, timeouts, dropped connections after every retry
    │   └── UpstreamUnreachableError  no connection at all: wrong OPENAI_BASE_URL, no network
    ├── SourceNotAvailableError     404 for a usage source: this organization has none (yet)
    └── BadUpstreamResponseError    a response we cannot read, or a request OpenAI rejected
        ├── NotJsonError            a 2xx page that is not JSON: not OpenAI's API at that URL
        └── RefusedDimensionError   400 for a group_by value: an older API, or one that dropped it

``ENDS_SYNC`` lists the errors after which a sync stops asking for the other sources: the key
is refused or the URL does not lead to OpenAI, so every other request would fail the same way.
"""

from __future__ import annotations

import re

_KEY_LIKE = re.compile(r"\b(sk|key|sess)-[A-Za-z0-9_*.\-]{3,}")


def scrub(text: str, *secrets: str) -> str:
    """``text`` without anything that looks like an OpenAI key (whole or redacted)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


class UpstreamError(Exception):
    """Base of every error the upstream client raises."""

    status_code: int | None = None

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class AdminKeyError(UpstreamError):
    """OpenAI refused the admin key; fix the setting, retrying will not help."""


class InvalidAdminKeyError(AdminKeyError):
    def __init__(self) -> None:
        super().__init__(
            "OpenAI rejected the admin key as invalid (401 invalid_api_key). Check "
            "OPENAI_ADMIN_KEY: copy the key again from the organization's Admin keys page "
            "(it starts with sk-admin-).",
            status_code=401,
        )


class RevokedAdminKeyError(InvalidAdminKeyError):
    def __init__(self) -> None:
        UpstreamError.__init__(
            self,
            "The admin key has been revoked (401). Create a new admin key on the organization's "
            "Admin keys page and set OPENAI_ADMIN_KEY to it.",
            status_code=401,
        )


class NotAdminKeyError(AdminKeyError):
    def __init__(self, status_code: int) -> None:
        super().__init__(
            f"This key cannot read organization usage ({status_code}: missing scope "
            "api.usage.read). It is a project key (sk-proj-) or an admin key without the usage "
            "scope: set OPENAI_ADMIN_KEY to an organization admin key (sk-admin-) with read access "
            "to usage.",
            status_code=status_code,
        )


class RateLimitedError(UpstreamError):
    def __init__(self, retry_after: float | None, attempts: int) -> None:
        wait = f" OpenAI asked to wait {retry_after:g} s." if retry_after else ""
        super().__init__(
            f"OpenAI is rate-limiting usage requests (429) and still was after {attempts} "
            f"attempts.{wait} The next sync will try again; lower the sync frequency if it "
            "persists.",
            status_code=429,
        )
        self.retry_after = retry_after


class UpstreamUnavailableError(UpstreamError):
    def __init__(self, what: str, attempts: int, status_code: int | None = None) -> None:
        super().__init__(
            f"OpenAI's API is unavailable ({what}) after {attempts} attempts. Stored data is "
            "unchanged; the next sync will try again. Check OPENAI_BASE_URL and the network if "
            "it persists.",
            status_code=status_code,
        )


class UpstreamUnreachableError(UpstreamUnavailableError):
    def __init__(self, host: str, attempts: int) -> None:
        UpstreamError.__init__(
            self,
            f"Cannot connect to {host} ({attempts} attempts). Check OPENAI_BASE_URL and this "
            "machine's network; stored data is unchanged and the next sync will try again.",
        )


class BadUpstreamResponseError(UpstreamError):
    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(
            f"OpenAI sent a response this version cannot use: {detail}. Stored data is unchanged.",
            status_code=status_code,
        )


class NotJsonError(BadUpstreamResponseError):
    def __init__(self, content_type: str) -> None:
        UpstreamError.__init__(
            self,
            f"The upstream answered with {content_type}, not JSON: this is not OpenAI's API. "
            "Check OPENAI_BASE_URL (https://api.openai.com/v1) and whether a proxy or captive "
            "portal stands in between. Stored data is unchanged.",
        )


class SourceNotAvailableError(UpstreamError):
    """404 for an endpoint the contract has: not an error of ours or of the key, a source this
    organization (or this version of the API) does not offer."""

    def __init__(self) -> None:
        super().__init__("not available for this organization (404)", status_code=404)


class RefusedDimensionError(BadUpstreamResponseError):
    """OpenAI rejected a ``group_by`` value it used to accept, or does not accept yet."""

    def __init__(self, dimension: str | None, message: str) -> None:
        UpstreamError.__init__(self, f"OpenAI refused group_by: {message}", status_code=400)
        self.dimension = dimension


ENDS_SYNC = (AdminKeyError, UpstreamUnreachableError, NotJsonError)


class WriteRefusedError(UpstreamError):
    """The provider refused a write: the write key lacks a permission (or is not an admin key
    with write scopes at all). Retrying does not help until the key is changed."""

    def __init__(self, status_code: int) -> None:
        super().__init__(
            f"the provider refused the write (HTTP {status_code}): the write key lacks the "
            "permission to change keys or spend limits",
            status_code=status_code,
        )


class PreviousStateUnknownError(UpstreamError):
    """What a change would undo cannot be read, so the change is not made."""

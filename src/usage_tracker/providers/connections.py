"""The connections the tracker reads: each a provider, one organization's admin key, a name,
and that organization's settings.

``OPENAI_ADMIN_KEY`` alone is the connection ``openai``, as before connections existed;
``ANTHROPIC_ADMIN_KEY`` (with ``ANTHROPIC_BASE_URL``) the connection ``anthropic``;
``CONNECTIONS_FILE`` (YAML, or JSON when it ends in .json) adds more::

    connections:
      - name: staging
        provider: openai
        key_env: OPENAI_STAGING_ADMIN_KEY     # or key_file: /run/secrets/staging-admin-key
        write_key_env: OPENAI_STAGING_WRITE_KEY   # optional, lets rules act (or write_key_file)
        usage_tier: "3-5"
        sharing_projects: [proj_abc]
        backfill_days: 30

The file names where each key is (an environment variable, or a file holding it), never the
key itself; the database never holds a key either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from usage_tracker.settings import Settings, SettingsError
from usage_tracker.text.documents import DocumentError, position, read_document, validated

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PROVIDERS = ("openai", "anthropic")
"""The providers this version reads."""


@dataclass(frozen=True)
class Connection:
    """One organization to read. ``key`` is a SecretStr: it shows as ``**********``."""

    name: str
    provider: str
    key: SecretStr = field(repr=False)
    base_url: str
    usage_tier: Literal["1-2", "3-5"] = "1-2"
    sharing_projects: tuple[str, ...] = ()
    backfill_days: int = 90
    write_key: SecretStr | None = field(default=None, repr=False)
    """A second admin key with write scopes: without it, nothing is ever written."""


class _Entry(BaseModel):
    """One entry of CONNECTIONS_FILE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str
    key_env: str | None = None
    key_file: Path | None = None
    write_key_env: str | None = None
    write_key_file: Path | None = None
    base_url: str | None = None
    usage_tier: Literal["1-2", "3-5"] | None = None
    sharing_projects: tuple[str, ...] = ()
    backfill_days: int | None = Field(default=None, ge=1, le=3660)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                "a name is 1 to 40 lower-case letters, digits, '-' or '_', starting with a "
                "letter or digit (it appears in URLs, exports and metric labels)"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(
                f"provider {value!r} is not one this version reads; it reads: "
                + ", ".join(PROVIDERS)
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> _Entry:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError(
                "give the admin key's place with exactly one of key_env (the name of an "
                "environment variable holding it) or key_file (a file holding it); never the "
                "key itself"
            )
        if self.write_key_env is not None and self.write_key_file is not None:
            raise ValueError(
                "give the write key's place with one of write_key_env or write_key_file"
            )
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connections: list[_Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _File:
        seen: set[str] = set()
        for entry in self.connections:
            if entry.name in seen:
                raise ValueError(f"the name {entry.name!r} is used twice")
            seen.add(entry.name)
        return self


def load_connections(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> list[Connection]:
    """Every connection of the settings: ``openai`` when OPENAI_ADMIN_KEY (or its file) is
    set, then those of CONNECTIONS_FILE. Raises SettingsError naming the file, line and column
    of what cannot be used (a key whose variable is unset or whose file cannot be read too)."""
    environ = os.environ if environ is None else environ
    found: list[Connection] = []
    for provider in PROVIDERS:  # OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY: named as the provider
        key = _environment_key(settings, provider)
        if key is not None and key.get_secret_value():
            found.append(
                Connection(
                    name=provider,
                    provider=provider,
                    key=key,
                    base_url=_base_url(settings, provider),
                    usage_tier=settings.usage_tier,
                    sharing_projects=settings.sharing_projects if provider == "openai" else (),
                    backfill_days=settings.backfill_days,
                    write_key=_environment_write_key(settings, provider),
                )
            )
    if settings.connections_file is None:
        return found
    path = settings.connections_file
    origin = f"CONNECTIONS_FILE {path}"
    try:
        text, data = read_document(path)
        if not isinstance(data, dict):
            raise DocumentError(f"{path}, line 1, column 1: expected a mapping with connections")
        entries = validated(_File, data, text, str(path)).connections
    except DocumentError as e:
        raise SettingsError(f"CONNECTIONS_FILE {e}") from None
    for i, entry in enumerate(entries):

        def problem(part: str, message: str, i: int = i) -> SettingsError:
            where = position(text, ["connections", i, part])
            return SettingsError(f"{origin}{where}: connections.{i}.{part}: {message}")

        if any(c.name == entry.name for c in found):
            raise problem(
                "name",
                f"the name {entry.name!r} is taken by the connection of "
                f"{entry.name.upper()}_ADMIN_KEY; name this one otherwise, or leave "
                f"{entry.name.upper()}_ADMIN_KEY unset",
            )
        found.append(
            Connection(
                name=entry.name,
                provider=entry.provider,
                key=_key(entry.key_env, entry.key_file, environ, problem, "key"),
                write_key=_key(
                    entry.write_key_env, entry.write_key_file, environ, problem, "write_key"
                )
                if entry.write_key_env is not None or entry.write_key_file is not None
                else None,
                base_url=entry.base_url or _base_url(settings, entry.provider),
                usage_tier=entry.usage_tier or settings.usage_tier,
                sharing_projects=entry.sharing_projects,
                backfill_days=entry.backfill_days or settings.backfill_days,
            )
        )
    return found


def _environment_key(settings: Settings, provider: str) -> SecretStr | None:
    return settings.anthropic_admin_key if provider == "anthropic" else settings.openai_admin_key


def _base_url(settings: Settings, provider: str) -> str:
    return settings.anthropic_base_url if provider == "anthropic" else settings.openai_base_url


def _environment_write_key(settings: Settings, provider: str) -> SecretStr | None:
    key = (
        settings.anthropic_admin_write_key
        if provider == "anthropic"
        else settings.openai_admin_write_key
    )
    return key if key is not None and key.get_secret_value() else None


def _key(
    env: str | None,
    path: Path | None,
    environ: Mapping[str, str],
    problem: Callable[[str, str], SettingsError],
    place: str,
) -> SecretStr:
    """The key ``place`` (``key`` or ``write_key``) names: its variable's or its file's."""
    if env is not None:
        value = environ.get(env, "").strip()
        if not value:
            raise problem(f"{place}_env", f"the environment variable {env} is not set")
        return SecretStr(value)
    assert path is not None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
        raise problem(f"{place}_file", f"cannot read {path}: {reason}") from None
    if not value:
        raise problem(f"{place}_file", f"{path} is empty")
    return SecretStr(value)

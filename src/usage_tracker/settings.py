"""Every setting, read from the environment or ``.env`` and validated once at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(Exception):
    """A setting has a bad value; the message names it and says what was expected."""


class Settings(BaseSettings):
    """The program's configuration (see the README's table). Nothing else reads the environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    openai_admin_key: SecretStr | None = None
    openai_admin_key_file: Path | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_admin_write_key: SecretStr | None = None
    """A second admin key, with write scopes, for the actions budget rules may name (none:
    nothing is ever written to OpenAI)."""
    openai_admin_write_key_file: Path | None = None
    anthropic_admin_key: SecretStr | None = None
    anthropic_admin_key_file: Path | None = None
    anthropic_admin_write_key: SecretStr | None = None
    anthropic_admin_write_key_file: Path | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    """Anthropic's Admin API (the SDK's base URL: no /v1); the simulator's in tests."""
    connections_file: Path | None = None
    """More organizations to read (YAML or JSON; see :mod:`usage_tracker.providers.connections`):
    each a name, a provider, where its admin key is, and its own settings."""
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    database_url: str = "sqlite:///usage-tracker.db"

    key_mappings_file: Path = Path("api_key_mappings.json")
    tiers_file: Path | None = None
    usage_tier: Literal["1-2", "3-5"] = "1-2"
    sharing_projects: Annotated[tuple[str, ...], NoDecode] = ()
    """Project ids whose traffic counts toward the complimentary pools; empty means all."""

    backfill_days: int = Field(default=90, ge=1, le=3660)
    sync_interval_seconds: int = Field(default=300, ge=10, le=86400)
    sync_lookback_hours: int = Field(default=48, ge=1, le=24 * 31)
    sync_concurrency: int = Field(default=3, ge=1, le=8)
    """Usage sources fetched at once during a sync (one request in flight each); a 429 holds
    every one back for as long as OpenAI asks."""
    alerts_file: Path | None = None
    """Alert rules (YAML or JSON); without it, pools at 50/80/100 % and spikes of 5× a key's
    usual hourly use."""
    alert_urls: SecretStr | None = None
    """Apprise URLs (space- or comma-separated) every alert goes to; they hold credentials."""
    metrics_token: SecretStr | None = None
    """A bearer token that lets a Prometheus scraper read /metrics without an account."""
    prices_file: Path | None = None
    """Adds or overrides list prices: {"models": {"name": {"input", "cached_input", "output"}}}
    in USD per 1M tokens, over genai-prices' data."""
    costs_lookback_days: int = Field(default=3, ge=1, le=60)
    """Costs settle late: every sync re-fetches this many recent days, shown as provisional."""
    statement_allocation: str = "proportional"
    """How a monthly statement shares the costs no team carries: ``proportional`` (to each
    team's billed cost) or ``team:NAME`` (all to one team)."""
    recent_sync_seconds: int = Field(default=60, ge=0, le=3600)
    """Between full syncs, re-fetch the previous and current hour this often (one request per
    usage source); 0 turns it off."""

    auth_mode: Literal["none", "header", "password", "oidc"] | None = None
    """``none``: no sign-in (allowed only on a loopback HOST); ``header``: a reverse proxy in
    TRUSTED_PROXIES signs people in and passes their email in AUTH_HEADER; ``password``:
    accounts in the database (``usage-tracker user add``); ``oidc``: any OpenID Connect
    issuer."""
    public_url: str | None = None
    """This server's address as people reach it (``https://usage.example.com``): where the
    OpenID provider sends people back. Never taken from a request's Host header."""
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_client_secret_file: Path | None = None
    oidc_allowed_domains: Annotated[tuple[str, ...], NoDecode] = ()
    """Email domains allowed to sign in (``example.com``); empty allows any verified email."""
    auth_header: str = "X-Forwarded-User"
    admin_emails: Annotated[tuple[str, ...], NoDecode] = ()
    """Emails that are admins whatever their account says (the first admin, in header mode)."""
    admin_password_file: Path | None = None
    """With AUTH_MODE=password: a file holding the first admin's password. When no admin can
    sign in yet, ``serve`` creates the account of the first of ADMIN_EMAILS with it; without
    it, ``serve`` prints a one-time setup link instead."""
    oidc_team_claim: str | None = None
    """The OpenID claim that names a person's team (a string, or a list: its first), kept at
    each sign-in; the mapping file and the People page say otherwise over it."""
    oidc_default_role: Literal["member", "viewer"] = "member"
    """The role of a signed-in email that has no account (header mode)."""
    session_secret: SecretStr | None = None
    """Signs CSRF tokens; generated once and kept in the database when not set."""
    session_idle_minutes: int = Field(default=8 * 60, ge=5, le=30 * 24 * 60)
    session_max_hours: int = Field(default=7 * 24, ge=1, le=365 * 24)
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    """Addresses or networks (CIDR) of the reverse proxies whose forwarded headers are believed.
    Unset: loopback with AUTH_MODE=header (the signing-in proxy on this host), else none, so
    that no client chooses its own address with an X-Forwarded-For a same-host proxy passed on
    (sign-in throttling counts per address)."""
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    """Host names this server answers for (``*.example.com`` allowed); empty means any, except
    with AUTH_MODE=none, which answers only for loopback names and these."""
    refresh_seconds: int = Field(default=60, ge=0, le=3600)
    """How often an open dashboard refreshes itself; 0 turns live refresh off."""
    results_cache_mb: int = Field(default=8, ge=0, le=4096)
    """Memory each server process may hold in computed reports (pages, summaries) for the
    data's current version; the least recently asked go first. 0 keeps none."""

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes answering requests (one per core is the most that helps); each runs
    the sync loop, and the sync lock lets one of them sync at a time."""
    display_timezone: str = "UTC"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator(
        "sharing_projects",
        "trusted_proxies",
        "allowed_hosts",
        "admin_emails",
        "oidc_allowed_domains",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator(
        "openai_admin_key",
        "anthropic_admin_key",
        "openai_admin_write_key",
        "anthropic_admin_write_key",
        "alert_urls",
        "metrics_token",
        "oidc_client_secret",
        "session_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``OPENAI_ADMIN_KEY=`` (a blank line in a compose file) means not set."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("statement_allocation")
    @classmethod
    def _allocation(cls, value: str) -> str:
        value = value.strip()
        if value != "proportional" and not (value.startswith("team:") and value[5:].strip()):
            raise ValueError("expected proportional, or team:NAME (all to one team)")
        return value

    @field_validator("admin_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from usage_tracker.people.access import normal_email

        return tuple(normal_email(e) for e in value)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f"{address!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("display_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (try UTC or Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _proxies_by_mode(self) -> Settings:
        if "trusted_proxies" not in self.model_fields_set and self.auth_mode == "header":
            if not self.listens_on_loopback:
                raise ValueError(
                    f"AUTH_MODE=header on HOST={self.host} needs TRUSTED_PROXIES: the address "
                    "or network of the signing-in proxy (in a container, its network, such as "
                    "172.16.0.0/12); only it may say who is signed in"
                )
            # Settings are frozen once built; this is still building them.
            object.__setattr__(self, "trusted_proxies", ("127.0.0.1", "::1"))
        return self

    @model_validator(mode="after")
    def _auth_where_exposed(self) -> Settings:
        loopback = self.listens_on_loopback
        if self.auth_mode == "none" and not loopback:
            raise ValueError(
                f"AUTH_MODE=none is refused on HOST={self.host}: without sign-in the dashboard may "
                "only listen on 127.0.0.1; set AUTH_MODE=password, or AUTH_MODE=header behind a "
                "signing-in proxy"
            )
        if self.auth_mode is None and not loopback:
            raise ValueError(
                f"HOST={self.host} is reachable from other machines: set AUTH_MODE=password "
                "(accounts in the database), AUTH_MODE=header (a reverse proxy that signs people "
                "in) or bind HOST=127.0.0.1"
            )
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        self._secret_from_file("oidc_client_secret")
        if self.auth_mode == "oidc":
            missing = [
                name
                for name, value in (
                    ("OIDC_ISSUER", self.oidc_issuer),
                    ("OIDC_CLIENT_ID", self.oidc_client_id),
                    ("PUBLIC_URL", self.public_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"AUTH_MODE=oidc needs {', '.join(missing)}")
        return self

    @property
    def listens_on_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    def _secret_from_file(self, name: str) -> None:
        """``NAME`` from the file in ``NAME_FILE`` when only the file is given."""
        path: Path | None = getattr(self, f"{name}_file")
        if getattr(self, name) is None and path is not None:
            try:
                value = path.read_text().strip()
            except OSError as e:
                raise ValueError(f"{name.upper()}_FILE: cannot read {path}: {e.strerror}") from None
            object.__setattr__(self, name, SecretStr(value))

    def alert_url_list(self) -> tuple[str, ...]:
        """ALERT_URLS, one Apprise URL each (raises SettingsError on one Apprise cannot use)."""
        if self.alert_urls is None:
            return ()
        from apprise.utils.parse import parse_urls

        from usage_tracker.alerts.channels import check_urls

        urls = tuple(parse_urls(self.alert_urls.get_secret_value()))  # type: ignore[no-untyped-call]
        try:
            return check_urls(urls)
        except ValueError as e:
            raise SettingsError(f"ALERT_URLS: {e}") from None

    def require_auth_mode(self) -> str:
        """The sign-in mode; serving without one chosen explicitly is refused."""
        if self.auth_mode is None:
            raise SettingsError(
                "AUTH_MODE is not set: set AUTH_MODE=none for a run on this machine only "
                "(HOST=127.0.0.1), AUTH_MODE=password for accounts in the database, or "
                "AUTH_MODE=header behind a signing-in reverse proxy."
            )
        return self.auth_mode

    @model_validator(mode="after")
    def _key_from_file(self) -> Settings:
        self._secret_from_file("openai_admin_key")
        self._secret_from_file("anthropic_admin_key")
        self._secret_from_file("openai_admin_write_key")
        self._secret_from_file("anthropic_admin_write_key")
        return self

    def admin_key(self) -> str:
        """The admin key; raises :class:`SettingsError` when neither setting gives one."""
        if self.openai_admin_key is None or not self.openai_admin_key.get_secret_value():
            raise SettingsError(
                "OPENAI_ADMIN_KEY is not set: give an organization admin key (sk-admin-…) in "
                "OPENAI_ADMIN_KEY or a file holding it in OPENAI_ADMIN_KEY_FILE (or name the "
                "organizations to read in CONNECTIONS_FILE)."
            )
        return self.openai_admin_key.get_secret_value()


ENV_FILE_VARIABLE = "USAGE_TRACKER_ENV_FILE"
"""Names the file read for settings (``.env`` when unset, none when empty): the test suite
sets it empty, so that a checkout's own ``.env`` never changes what the tests see."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``.env`` (see :data:`ENV_FILE_VARIABLE`), with
    ``overrides`` on top.

    Raises :class:`SettingsError` naming each bad variable and what it expected.
    """
    env_file = os.environ.get(ENV_FILE_VARIABLE, ".env") or None
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type,call-arg]
    except ValidationError as e:
        problems = []
        for error in e.errors():
            name = "_".join(str(p) for p in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            # The input is shown only when it is one plain, non-secret value: a check across
            # settings gets all of them as input, admin key included.
            plain = name and "KEY" not in name and "SECRET" not in name
            shown = f" (got {value!r})" if plain and not isinstance(value, dict | list) else ""
            problems.append(f"{name}: {message}{shown}" if name else message)
        raise SettingsError("; ".join(problems)) from None

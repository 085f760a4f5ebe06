"""The alert rules: ``ALERTS_FILE`` (YAML or JSON) read and validated at start-up, with errors
that name the file, line and column; the defaults when there is no file.

The file's shape (every section optional)::

    channels: [slack://…, mailto://…]     # Apprise URLs every alert goes to (with ALERT_URLS)
    owner_email: mailto://user:pw@smtp.example.com?from=alerts@example.com
                                          # lets a budget rule email the person it is about
    pools: {thresholds: [50, 80, 100], run_out_before: "16:00"}
    limits: {thresholds: [80, 100]}       # of every hard spend limit a provider reports
    budgets:
      - {person: Alice, limit: 200, unit: usd, period: month, cost: billed, thresholds: [80, 100]}
      - {person: Bob, limit: 50, action: pause_keys, mode: propose}   # acts at 100 % (write key)
      - {team: Research, limit: 2000, channels: [slack://…/#research]}  # a team's own channel
      - {project: proj_abc, limit: 500, action: project_limit, mode: auto}
    forecasts:
      - {limit: 5000}                     # the organization's month-end forecast over $5,000
    spikes:
      - {per: key, window: hour, factor: 5, min_tokens: 100000, baseline_days: 7}
    digest: {at: "08:00"}
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from usage_tracker.text.documents import DocumentError, parse_document, read_document, validated

from .channels import check_urls


class AlertRulesError(Exception):
    """The alert rules cannot be used; the message names the file, line and column."""


def _apprise_url(value: str | None) -> str | None:
    return None if value is None else check_urls((value,))[0]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[str, ...] = ()
    """Apprise URLs for this rule only; empty means the default channels."""

    _channels = field_validator("channels")(check_urls)


def _minutes(value: object) -> object:
    """``"HH:MM"`` (UTC) as minutes after midnight. YAML 1.1 reads an unquoted 17:00 as the
    base-60 number 1020, which is the same count of minutes: accepted as such."""
    if isinstance(value, str):
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ValueError(f"expected a UTC time as HH:MM, got {value!r}")
        value = int(hours) * 60 + int(minutes)
    if not isinstance(value, int) or not 0 <= value < 24 * 60:
        raise ValueError("expected a UTC time as HH:MM between 00:00 and 23:59")
    return value


def _percents(value: tuple[float, ...]) -> tuple[float, ...]:
    if not value or any(not 0 < v <= 1000 for v in value):
        raise ValueError("expected percentages above 0 (and at most 1000)")
    return tuple(sorted(set(value)))


class PoolRule(_Rule):
    enabled: bool = True
    thresholds: tuple[float, ...] = (50, 80, 100)
    """Percent of each daily pool; each fires once per pool per UTC day."""
    run_out_before: int | None = None
    """Minutes after 00:00 UTC: alert when today's pace empties a pool before then."""

    _thresholds = field_validator("thresholds")(_percents)
    _time = field_validator("run_out_before", mode="before")(_minutes)


class LimitRule(_Rule):
    enabled: bool = True
    thresholds: tuple[float, ...] = (80, 100)
    """Percent of each hard spend limit a provider reports (the organization's and each
    project's): each fires once per limit per month."""

    _thresholds = field_validator("thresholds")(_percents)


class BudgetRule(_Rule):
    name: str | None = None
    person: str | None = None
    team: str | None = None
    """A team of the mapping file: the cost of its keys (with ``channels``, the team's own)."""
    key: str | None = None
    project: str | None = None
    limit: Decimal = Field(gt=0)
    unit: Literal["usd", "tokens"] = "usd"
    period: Literal["day", "month"] = "month"
    cost: Literal["billed", "estimated"] = "billed"
    thresholds: tuple[float, ...] = (80, 100)
    notify_owner: bool = False
    """Also email the person the budget is about (needs ``owner_email`` and their email)."""
    action: Literal["pause_keys", "project_limit"] | None = None
    """What to do at the provider once the budget is spent (100 %), with the connection's
    write key: ``pause_keys`` makes the person's (or the key's) keys read-only (OpenAI) or
    inactive (Anthropic); ``project_limit`` sets the project's hard spend limit to what the
    budget has left this month. Resume gives back exactly what was there."""
    mode: Literal["propose", "auto"] = "propose"
    """``propose``: an admin approves or dismisses it on the Alerts page; ``auto``: done at
    once, then told on the rule's channels with how to undo it."""

    _thresholds = field_validator("thresholds")(_percents)

    @model_validator(mode="after")
    def _one_subject(self) -> BudgetRule:
        subjects = [s for s in (self.person, self.team, self.key, self.project) if s is not None]
        if len(subjects) > 1:
            raise ValueError(
                "a budget is about one person, team, key or project (or, with none, all)"
            )
        if self.notify_owner and self.person is None and self.key is None:
            raise ValueError("notify_owner needs a person or a key")
        if self.action == "pause_keys" and self.person is None and self.key is None:
            raise ValueError("action pause_keys needs a person or a key")
        if self.action == "project_limit" and (
            self.project is None or self.unit != "usd" or self.period != "month"
        ):
            raise ValueError(
                "action project_limit needs a project, unit usd and period month (a provider's "
                "hard spend limit is in dollars per month)"
            )
        return self

    @property
    def subject(self) -> tuple[str, str]:
        """(``person``, ``team``, ``key``, ``project`` or ``organization``, the value)."""
        for kind in ("person", "team", "key", "project"):
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        return "organization", "organization"

    @property
    def rule_id(self) -> str:
        kind, value = self.subject
        return self.name or f"budget:{kind}:{value}:{self.unit}:{self.period}:{self.cost}"


class ForecastRule(_Rule):
    name: str | None = None
    person: str | None = None
    project: str | None = None
    limit: Decimal = Field(gt=0)
    """US dollars: fires once per month when the month-end forecast goes over it."""

    @model_validator(mode="after")
    def _one_subject(self) -> ForecastRule:
        if self.person is not None and self.project is not None:
            raise ValueError("a forecast rule is about one person or project (or, with none, all)")
        return self

    @property
    def subject(self) -> tuple[str, str]:
        if self.person is not None:
            return "person", self.person
        if self.project is not None:
            return "project", self.project
        return "organization", "organization"

    @property
    def rule_id(self) -> str:
        kind, value = self.subject
        return self.name or f"forecast:{kind}:{value}"


class SpikeRule(_Rule):
    name: str | None = None
    per: Literal["key", "person"] = "key"
    window: Literal["hour", "day"] = "hour"
    factor: float = Field(default=5, gt=1)
    """More than this many times the usual amount per window is a spike."""
    min_tokens: int = Field(default=100_000, ge=0)
    """Below this many tokens in the window, nothing is a spike (quiet keys are noisy)."""
    baseline_days: int = Field(default=7, ge=1, le=90)
    """The usual amount: a busy window of these last days (the 90th percentile of the windows
    with any use)."""

    @property
    def rule_id(self) -> str:
        return self.name or f"spike:{self.per}:{self.window}"


class DigestRule(_Rule):
    at: int = 8 * 60
    """Minutes after 00:00 UTC when yesterday's digest goes out."""

    _time = field_validator("at", mode="before")(_minutes)


class AlertRules(BaseModel):
    """Every rule, with the defaults filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[str, ...] = ()
    owner_email: str | None = None
    pools: PoolRule = PoolRule()
    limits: LimitRule = LimitRule()
    budgets: tuple[BudgetRule, ...] = ()
    forecasts: tuple[ForecastRule, ...] = ()
    spikes: tuple[SpikeRule, ...] = (SpikeRule(),)
    digest: DigestRule | None = None

    _channels = field_validator("channels")(check_urls)
    _owner_email = field_validator("owner_email")(_apprise_url)

    @model_validator(mode="after")
    def _unique_names(self) -> AlertRules:
        named: list[BudgetRule | ForecastRule | SpikeRule] = [
            *self.budgets,
            *self.forecasts,
            *self.spikes,
        ]
        ids = [r.rule_id for r in named]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"two rules share the id {repeated[0]!r}: give one a 'name'")
        return self

    def all_channels(self) -> tuple[str, ...]:
        rules: list[_Rule] = [
            self.pools,
            self.limits,
            *self.budgets,
            *self.forecasts,
            *self.spikes,
        ]
        if self.digest is not None:
            rules.append(self.digest)
        urls = [*self.channels, *(u for r in rules for u in r.channels)]
        if self.owner_email:
            urls.append(self.owner_email)
        return tuple(dict.fromkeys(urls))


DEFAULT_RULES = AlertRules()
"""Without ALERTS_FILE: pools at 50/80/100 %, hard spend limits at 80/100 % and spikes of 5× a
key's usual hourly use."""


def load_rules(path: Path | None) -> AlertRules:
    """The rules in ``path`` (YAML, or JSON when it ends in .json), or the defaults."""
    if path is None:
        return DEFAULT_RULES
    try:
        text, data = read_document(path)
    except DocumentError as e:
        raise AlertRulesError(str(e)) from None
    return _rules(data, text, str(path))


def parse_rules(text: str, origin: str, *, json_syntax: bool = False) -> AlertRules:
    try:
        data = parse_document(text, origin, json_syntax=json_syntax)
    except DocumentError as e:
        raise AlertRulesError(str(e)) from None
    return _rules(data, text, origin)


def _rules(data: Any, text: str, origin: str) -> AlertRules:
    if data is None:
        return DEFAULT_RULES
    if not isinstance(data, dict):
        raise AlertRulesError(f"{origin}, line 1, column 1: expected a mapping of sections")
    try:
        return validated(AlertRules, data, text, origin)
    except DocumentError as e:
        raise AlertRulesError(str(e)) from None


ACTION_WORDS = {
    "pause_keys": "pauses the keys (read-only at OpenAI, inactive at Anthropic)",
    "project_limit": "sets the project's hard spend limit to what the budget has left",
}


def describe_rules(rules: AlertRules) -> list[dict[str, str]]:
    """Each rule in words: what it watches and when it fires."""

    def limit(amount: Decimal, unit: str) -> str:
        return f"${amount:,.2f}" if unit == "usd" else f"{int(amount):,} tokens"

    def percents(values: tuple[float, ...]) -> str:
        return ", ".join(f"{v:g} %" for v in values)

    out = []
    if rules.pools.enabled:
        when = f"at {percents(rules.pools.thresholds)} of each daily pool"
        if rules.pools.run_out_before is not None:
            h, mnt = divmod(rules.pools.run_out_before, 60)
            when += f"; when today's pace empties a pool before {h:02d}:{mnt:02d} UTC"
        out.append({"rule": "pools", "watches": "complimentary pools (UTC day)", "fires": when})
    if rules.limits.enabled:
        out.append(
            {
                "rule": "limits",
                "watches": "every hard spend limit a provider reports (month)",
                "fires": f"at {percents(rules.limits.thresholds)} of each",
            }
        )
    for b in rules.budgets:
        kind, value = b.subject
        cost = f", {b.cost} cost" if b.unit == "usd" else ""
        out.append(
            {
                "rule": b.rule_id,
                "watches": f"{kind} {value}" if kind != "organization" else "the organization",
                "fires": f"at {percents(b.thresholds)} of {limit(b.limit, b.unit)} per "
                f"{'UTC day' if b.period == 'day' else 'month'}{cost}"
                + ("; emails the person too" if b.notify_owner else "")
                + (
                    f"; when spent, {ACTION_WORDS[b.action]} "
                    f"({'at once' if b.mode == 'auto' else 'once an admin approves'})"
                    if b.action
                    else ""
                ),
            }
        )
    for f in rules.forecasts:
        kind, value = f.subject
        out.append(
            {
                "rule": f.rule_id,
                "watches": f"{kind} {value}" if kind != "organization" else "the organization",
                "fires": f"when the month-end forecast exceeds {limit(f.limit, 'usd')}",
            }
        )
    for s in rules.spikes:
        out.append(
            {
                "rule": s.rule_id,
                "watches": f"every {s.per}, per {s.window}",
                "fires": f"above {s.factor:g}× a busy {s.window} of the last {s.baseline_days} "
                f"days (and at least {s.min_tokens:,} tokens); once a day each",
            }
        )
    if rules.digest is not None:
        h, mnt = divmod(rules.digest.at, 60)
        out.append(
            {"rule": "digest", "watches": "yesterday", "fires": f"daily at {h:02d}:{mnt:02d} UTC"}
        )
    return out

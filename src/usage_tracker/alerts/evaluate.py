"""Rules against the reports: which alerts stand now. Pure reading; recording and sending are
the engine's. Every firing's dedupe key holds its period, so an alert raised once in a period
is never raised again in it, even when revised data drops below its threshold and rises again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from usage_tracker import reports
from usage_tracker.people.names import Names
from usage_tracker.providers.openai.contract import align_down
from usage_tracker.providers.openai.pools import PoolTable
from usage_tracker.reports import limits
from usage_tracker.reports.forecast import month_bounds
from usage_tracker.store import Store

from . import messages as m
from .messages import Firing
from .rules import AlertRules, BudgetRule, ForecastRule, LimitRule, SpikeRule

DAY, HOUR = 86400, 3600


@dataclass(frozen=True)
class Inputs:
    """What the rules are evaluated against."""

    store: Store
    names: Names
    pools: PoolTable
    usage_tier: str
    sharing_projects: Sequence[str]
    base_url: str
    """The dashboard's address, for the links in messages."""
    connection: str | None = None
    """The OpenAI organization whose pools are watched (the primary connection)."""
    more_pools: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """The other OpenAI organizations, each with pools of its own: (connection, usage tier,
    sharing projects)."""


def evaluate(rules: AlertRules, inputs: Inputs, now: int) -> list[Firing]:
    """Every alert the rules raise at ``now`` (already-sent ones included: the engine keeps
    only those it has not recorded)."""
    firings: list[Firing] = []
    if rules.pools.enabled:
        firings += pool_alerts(rules, inputs, now)
    if rules.limits.enabled:
        firings += limit_alerts(rules.limits, inputs, now)
    for budget in rules.budgets:
        firings += budget_alerts(budget, inputs, now)
    for rule in rules.forecasts:
        firings += forecast_alerts(rule, inputs, now)
    for spike in rules.spikes:
        firings += spike_alerts(spike, inputs, now)
    if rules.digest is not None and now >= align_down(now, "1d") + rules.digest.at * 60:
        firings.append(digest(rules, inputs, now))
    return firings


# -- pools ------------------------------------------------------------------------------------


def pool_alerts(rules: AlertRules, inputs: Inputs, now: int) -> Iterator[Firing]:
    """Each OpenAI organization's pools: the first one's as ever, each other's named."""
    first = (inputs.connection, inputs.usage_tier, tuple(inputs.sharing_projects))
    for i, (connection, tier, sharing) in enumerate((first, *inputs.more_pools)):
        yield from _organization_pools(rules, inputs, now, (connection, tier, sharing), named=i > 0)


def _organization_pools(
    rules: AlertRules,
    inputs: Inputs,
    now: int,
    organization: tuple[str | None, str, Sequence[str]],
    *,
    named: bool,
) -> Iterator[Firing]:
    """One organization's pool alerts; ``named``: its connection in the key and the title
    (the first organization's keep theirs, so that nothing sent before fires again).
    ``organization``: (connection, usage tier, sharing projects)."""
    connection, usage_tier, sharing_projects = organization
    report = reports.pool_usage(
        inputs.store,
        inputs.names,
        inputs.pools,
        now,
        usage_tier=usage_tier,
        sharing_projects=sharing_projects,
        connection=connection,
    )
    of = f"{connection}: " if named else ""
    key = f"pool:{connection}:" if named else "pool:"
    day = m.day_label(report.day_start)
    url = m.link(inputs.base_url, range="today")
    rule = rules.pools
    for pool, status in report.pools.items():
        if not status.limit:
            continue
        top = sorted(status.people.items(), key=lambda kv: -kv[1])[:3]
        who = ", ".join(f"{person} {m.tokens(n)}" for person, n in top)
        payload = {
            "pool": pool,
            "connection": connection,
            "used_tokens": status.used,
            "limit_tokens": status.limit,
            "percent": round(status.percent, 1),
            "day": day,
            "exhausted_at": status.exhausted_at,
            "top_people": dict(top),
            "url": url,
        }
        pace = (
            f"At today's pace it runs out at {m.clock(status.exhausted_at)}."
            if status.exhausted_at and status.used < status.limit
            else ""
        )
        for threshold in rule.thresholds:
            if status.percent < threshold:
                continue
            yield Firing(
                dedupe_key=f"{key}{pool}:{threshold:g}:{day}",
                rule="pools",
                kind="pool",
                period=day,
                title=f"{of}{pool.capitalize()} pool at {threshold:g} % of today's free tokens",
                lines=_lines(
                    f"{m.tokens(status.used)} of {m.tokens(status.limit)} complimentary tokens "
                    f"used in the {pool} pool ({m.percent(status.percent)}), UTC day {day}.",
                    pace,
                    f"Most used by: {who}." if who else "",
                    url,
                ),
                payload={**payload, "threshold_percent": threshold},
                channels=rule.channels,
                group=f"pool:{pool}:{day}",
                rank=threshold,
            )
        limit_minute = rule.run_out_before
        if (
            limit_minute is not None
            and status.exhausted_at is not None
            and status.used < status.limit
            and status.exhausted_at < report.day_start + limit_minute * 60
        ):
            before = m.clock(report.day_start + limit_minute * 60)
            yield Firing(
                dedupe_key=f"pool-run-out:{pool}:{day}",
                rule="pools",
                kind="pool_run_out",
                period=day,
                title=f"{pool.capitalize()} pool will run out before {before}",
                lines=_lines(
                    f"At today's pace ({m.tokens(status.burn_per_hour)} tokens an hour) the "
                    f"{pool} pool runs out at {m.clock(status.exhausted_at)}, before {before}: "
                    f"{m.tokens(status.used)} of {m.tokens(status.limit)} used so far.",
                    f"Most used by: {who}." if who else "",
                    url,
                ),
                payload={**payload, "run_out_before": before},
                channels=rule.channels,
            )


# -- budgets and forecasts ----------------------------------------------------------------------


def _period(period: str, now: int) -> tuple[int, int, str]:
    if period == "day":
        start = align_down(now, "1d")
        return start, start + DAY, m.day_label(start)
    start, end = month_bounds(now)
    return start, end, m.month_label(start)


def _project_id(inputs: Inputs, project: str) -> str:
    """A project named by id or by name."""
    for row in inputs.store.projects():
        if project in (row["id"], row.get("name")):
            return str(row["id"])
    return project


def _subject_filter(
    inputs: Inputs, kind: str, value: str, start: int, end: int
) -> dict[str, list[str]] | None:
    if kind == "person":
        keys = reports.keys_of_person(inputs.store, inputs.names, start, end, value)
        return {"api_key_id": keys or ["(none)"]}
    if kind == "key":
        return {"api_key_id": [value]}
    if kind == "team":
        known = [k for k in inputs.names.keys if inputs.names.team(k) == value]
        return {"api_key_id": known or ["(none)"]}
    if kind == "project":
        return {"project_id": [_project_id(inputs, value)]}
    return None


def _who(kind: str, value: str) -> str:
    return "the organization" if kind == "organization" else f"{kind} {value}"


def _owner_email(inputs: Inputs, where: dict[str, list[str]] | None) -> str:
    for key in (where or {}).get("api_key_id", []):
        email = inputs.names.email(key)
        if email:
            return email
    return ""


def limit_alerts(rule: LimitRule, inputs: Inputs, now: int) -> Iterator[Firing]:
    """Each hard spend limit a provider reports, against its subject's billed cost this UTC
    month: once per threshold, limit and month (the key holds the connection and project)."""
    report = limits.limits(inputs.store, inputs.names, now)
    period = m.month_label(now)
    for row in limits.hard_limits(report):
        if not row["amount_usd"] or row["percent"] is None:
            continue
        project = row["project_id"] or ""
        subject = f"project {row['subject']}" if project else "the organization"
        where = f"{subject} ({row['connection']})"
        url = m.link(inputs.base_url, range="mtd", connection=row["connection"], project=project)
        for threshold in rule.thresholds:
            if row["percent"] < threshold:
                continue
            rule_id = f"limit:{row['connection']}:{project or 'organization'}"
            enforcing = (
                " The provider says it is enforcing it: requests are being refused."
                if row["enforcing"]
                else ""
            )
            yield Firing(
                dedupe_key=f"{rule_id}:{threshold:g}:{period}",
                rule="limits",
                kind="limit",
                period=period,
                title=f"Spend limit {threshold:g} % reached: {where}, {period}",
                lines=_lines(
                    f"{where[0].upper()}{where[1:]} has been billed {m.usd(row['used_usd'])} of "
                    f"its {m.usd(row['amount_usd'])} hard spend limit this month "
                    f"({m.percent(row['percent'])}).{enforcing}",
                    url,
                ),
                payload={
                    "connection": row["connection"],
                    "project_id": row["project_id"],
                    "used": str(row["used_usd"]),
                    "limit": str(row["amount_usd"]),
                    "percent": row["percent"],
                    "threshold_percent": threshold,
                    "enforcing": row["enforcing"],
                    "period": period,
                    "url": url,
                },
                channels=rule.channels,
                group=f"{rule_id}:{period}",
                rank=threshold,
            )


def budget_alerts(rule: BudgetRule, inputs: Inputs, now: int) -> Iterator[Firing]:
    start, end, period = _period(rule.period, now)
    hi = min(end, align_down(now, "1h") + HOUR)
    kind, value = rule.subject
    where = _subject_filter(inputs, kind, value, start, hi)
    summary = reports.summary(inputs.store, inputs.names, start, hi, where=where)
    if rule.unit == "tokens":
        used: Decimal = Decimal(summary["totals"]["tokens"])
        shown, limit_shown = m.tokens(used) + " tokens", m.tokens(rule.limit) + " tokens"
    else:
        used = summary["billed_usd"] if rule.cost == "billed" else summary["estimated_usd"]
        shown, limit_shown = f"{m.usd(used)} {rule.cost}", m.usd(rule.limit)
    share = float(used / rule.limit * 100)
    url = m.link(
        inputs.base_url,
        range="today" if rule.period == "day" else "mtd",
        person=value if kind == "person" else "",
        team=value if kind == "team" else "",
    )
    who = _who(kind, value)
    recipient = _owner_email(inputs, where) if rule.notify_owner else ""
    for threshold in rule.thresholds:
        if share < threshold:
            continue
        yield Firing(
            dedupe_key=f"{rule.rule_id}:{threshold:g}:{period}",
            rule=rule.rule_id,
            kind="budget",
            period=period,
            title=f"Budget {threshold:g} % reached: {who}, {period}",
            lines=_lines(
                f"{m.sentence(who)} has used {shown} of a {limit_shown} budget for "
                f"{'the UTC day' if rule.period == 'day' else 'the month'} {period} "
                f"({m.percent(share)}).",
                url,
            ),
            payload={
                "subject": {"kind": kind, "value": value},
                "used": str(used),
                "limit": str(rule.limit),
                "unit": rule.unit,
                "cost": rule.cost if rule.unit == "usd" else None,
                "percent": round(share, 1),
                "threshold_percent": threshold,
                "period": period,
                "url": url,
            },
            channels=rule.channels,
            recipient=recipient,
            group=f"{rule.rule_id}:{period}",
            rank=threshold,
        )


def forecast_alerts(rule: ForecastRule, inputs: Inputs, now: int) -> Iterator[Firing]:
    figures = reports.forecast(inputs.store, inputs.names, now)
    kind, value = rule.subject
    if kind == "organization":
        entry: dict[str, Any] | None = figures["organization"]
    else:
        wanted = value if kind == "person" else inputs.names.project(_project_id(inputs, value))
        rows = figures["people" if kind == "person" else "projects"]
        entry = next((r for r in rows if r["name"] == wanted), None)
    if entry is None or entry["projected_month_end"] <= rule.limit:
        return
    month = m.month_label(figures["month_start"])
    url = m.link(inputs.base_url, range="mtd", person=value if kind == "person" else "")
    who = _who(kind, value)
    yield Firing(
        dedupe_key=f"{rule.rule_id}:{month}",
        rule=rule.rule_id,
        kind="forecast",
        period=month,
        title=f"Month-end forecast over budget: {who}, {month}",
        lines=_lines(
            f"{m.sentence(who)} is forecast to be billed {m.usd(entry['projected_month_end'])} "
            f"by the end of {month}, over the {m.usd(rule.limit)} budget: "
            f"{m.usd(entry['month_to_date'])} so far, {m.usd(entry['daily_run_rate'])} a day "
            "lately.",
            url,
        ),
        payload={
            "subject": {"kind": kind, "value": value},
            "projected_month_end": str(entry["projected_month_end"]),
            "month_to_date": str(entry["month_to_date"]),
            "daily_run_rate": str(entry["daily_run_rate"]),
            "limit": str(rule.limit),
            "month": month,
            "url": url,
        },
        channels=rule.channels,
    )


# -- spikes ---------------------------------------------------------------------------------


def spike_alerts(rule: SpikeRule, inputs: Inputs, now: int) -> Iterator[Firing]:
    """A key (or person) using more than ``factor`` times its usual amount in the current or
    the last complete hour (or day). The usual amount is a busy window of the ``baseline_days``
    before: the 90th percentile of the windows in which it was used (use is bursty, so an
    average would call every busy afternoon a spike). Without any use before, nothing is usual
    yet and nothing is a spike."""
    step = HOUR if rule.window == "hour" else DAY
    current = align_down(now, "1h" if rule.window == "hour" else "1d")
    checked_from = current - step
    base_start = checked_from - rule.baseline_days * DAY
    rows = reports.usage_totals(
        inputs.store,
        inputs.names,
        base_start,
        current + step,
        [rule.window, "api_key"],
        metrics=["input_tokens", "output_tokens"],
    )
    amounts: dict[str, dict[int, int]] = {}
    keys_of: dict[str, set[str]] = {}
    for row in rows:
        key = row["api_key"]
        if not key:
            continue
        subject = key if rule.per == "key" else inputs.names.person(key)
        windows = amounts.setdefault(subject, {})
        windows[row[rule.window]] = windows.get(row[rule.window], 0) + row["tokens"]
        keys_of.setdefault(subject, set()).add(key)
    day = m.day_label(now)
    for subject, windows in sorted(amounts.items()):
        history = sorted(n for w, n in windows.items() if w < checked_from and n > 0)
        if not history:
            continue
        usual = history[int(len(history) * 0.9)]
        for start in (current, checked_from):
            used = windows.get(start, 0)
            if used >= rule.min_tokens and used > rule.factor * usual:
                yield _spike(
                    rule,
                    inputs,
                    subject=subject,
                    keys=keys_of[subject],
                    start=start,
                    used=used,
                    usual=usual,
                    day=day,
                )
                break


def _spike(
    rule: SpikeRule,
    inputs: Inputs,
    *,
    subject: str,
    keys: set[str],
    start: int,
    used: int,
    usual: int,
    day: str,
) -> Firing:
    names = inputs.names
    if rule.per == "key":
        person = names.person(subject)
        who = f"key {names.key(subject)} ({subject}) of {person}"
        url = m.link(inputs.base_url, range="today", person=person)
    else:
        person = subject
        who = f"{person} (keys: {', '.join(sorted(names.key(k) for k in keys))})"
        url = m.link(inputs.base_url, range="today", person=person)
    when = f"the hour from {m.clock(start)}" if rule.window == "hour" else f"{m.day_label(start)}"
    ratio = used / usual
    return Firing(
        dedupe_key=f"{rule.rule_id}:{subject}:{day}",
        rule=rule.rule_id,
        kind="spike",
        period=day,
        title=f"Usage spike: {who}",
        lines=_lines(
            f"{m.sentence(who)} used "
            f"{m.tokens(used)} tokens in {when}, {ratio:.0f}× its usual "
            f"{m.tokens(usual)} in a busy {rule.window} of the last {rule.baseline_days} days.",
            "If nobody expected this, the key may have leaked: revoke it on OpenAI's API keys "
            "page.",
            url,
        ),
        payload={
            "per": rule.per,
            "subject": subject,
            "person": person,
            "keys": sorted(keys),
            "window": rule.window,
            "window_start": start,
            "tokens": used,
            "usual_tokens": usual,
            "factor": rule.factor,
            "ratio": round(ratio, 1),
            "url": url,
        },
        channels=rule.channels,
    )


# -- digest ---------------------------------------------------------------------------------


def digest(rules: AlertRules, inputs: Inputs, now: int) -> Firing:
    """Yesterday per person and per model, yesterday's pools, and the month so far against
    its forecast."""
    today = align_down(now, "1d")
    yesterday = today - DAY
    day = m.day_label(yesterday)
    summary = reports.summary(inputs.store, inputs.names, yesterday, today)
    pools = reports.pool_usage(
        inputs.store,
        inputs.names,
        inputs.pools,
        today - 1,
        usage_tier=inputs.usage_tier,
        sharing_projects=inputs.sharing_projects,
        connection=inputs.connection,
    )
    outlook = reports.forecast(inputs.store, inputs.names, now)
    org = outlook["organization"]
    people = _top(summary["by"]["person"], "person")
    models = _top(summary["by"]["model"], "model")
    url = m.link(inputs.base_url, range="yesterday")
    lines = [
        f"Yesterday (UTC {day}): {m.tokens(summary['totals']['tokens'])} tokens, "
        f"{m.usd(summary['billed_usd'])} billed, {m.usd(summary['estimated_usd'])} estimated.",
        "By person: " + "; ".join(_figures(*row) for row in people) if people else "",
        "By model: " + "; ".join(_figures(*row) for row in models) if models else "",
        "Pools: "
        + "; ".join(
            f"{p} {m.tokens(s.used)} of {m.tokens(s.limit)} ({m.percent(s.percent)})"
            for p, s in pools.pools.items()
        ),
        f"Month to date: {m.usd(org['month_to_date'])}; forecast for the month: "
        f"{m.usd(org['projected_month_end'])}.",
        url,
    ]
    return Firing(
        dedupe_key=f"digest:{day}",
        rule="digest",
        kind="digest",
        period=day,
        title=f"Usage digest for {day}",
        lines=_lines(*lines),
        payload={
            "day": day,
            "tokens": summary["totals"]["tokens"],
            "billed_usd": str(summary["billed_usd"]),
            "estimated_usd": str(summary["estimated_usd"]),
            "people": [{"person": p, "tokens": t, "billed_usd": _text(c)} for p, t, c in people],
            "models": [{"model": x, "tokens": t, "billed_usd": _text(c)} for x, t, c in models],
            "pools": {p: {"used": s.used, "limit": s.limit} for p, s in pools.pools.items()},
            "month_to_date": str(org["month_to_date"]),
            "projected_month_end": str(org["projected_month_end"]),
            "url": url,
        },
        channels=rules.digest.channels if rules.digest else (),
    )


def _top(rows: list[dict[str, Any]], grouping: str) -> list[tuple[str, int, Decimal | None]]:
    """The ten biggest rows that used tokens or were billed, as (name, tokens, billed)."""
    kept = [r for r in rows if r["tokens"] or r["billed_cost"]]
    return [(str(r[grouping] or "(none)"), r["tokens"], r["billed_cost"]) for r in kept[:10]]


def _figures(name: str, tokens: int, billed: Decimal | None) -> str:
    return f"{name} {m.tokens(tokens)}" + (f" ({m.usd(billed)})" if billed else "")


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _lines(*lines: str) -> tuple[str, ...]:
    return tuple(line for line in lines if line)

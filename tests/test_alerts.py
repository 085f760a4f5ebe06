"""Alerts end to end: a synced simulator organization, the rules evaluated hour by hour, and
messages received by a real local webhook receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from usage_tracker import reports, simulator
from usage_tracker.alerts.engine import RETRY_DELAYS, AlertEngine
from usage_tracker.alerts.evaluate import Inputs
from usage_tracker.alerts.rules import AlertRules, LimitRule, parse_rules
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.contract import align_down
from usage_tracker.providers.openai.pools import PoolTable, load_pool_table
from usage_tracker.store import Store
from usage_tracker.store import alerts as alert_rows
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW, fresh_database
from .receivers import SmtpReceiver, WebhookReceiver

HOUR, DAY = 3600, 86400
DAY0 = align_down(NOW, "1d")
END_OF_DAY = DAY0 + DAY - 60
BASE_URL = "http://tracker.test"


class Org:
    """A simulated organization synced through the end of DAY0 into a fresh database."""

    def __init__(self, database_url: str, sim: simulator.Simulator, client: AdminClient) -> None:
        self.database_url, self.sim, self.client = database_url, sim, client
        self.store = Store.open(database_url)
        self.stores = [self.store]

    def sync(self) -> None:
        window = SyncWindow(backfill_days=9)
        assert sync_once(self.store, self.client, window=window, now=END_OF_DAY).errors == []

    def open_store(self) -> Store:
        """Another process's connection to the same database (a replica)."""
        store = Store.open(self.database_url)
        self.stores.append(store)
        return store

    def engine(
        self,
        rules: AlertRules,
        urls: list[str],
        pools: PoolTable | None = None,
        store: Store | None = None,
    ) -> AlertEngine:
        """The engine of ``rules``; the limits alert left out (the simulated organization has
        limits past their thresholds, which these tests are not about)."""
        rules = rules.model_copy(update={"limits": LimitRule(enabled=False)})
        store = store or self.store
        table = pools or load_pool_table(None)

        def inputs() -> Inputs:
            names = reports.load_names(store)
            return Inputs(store, names, table, "1-2", (), BASE_URL)

        return AlertEngine(store, rules, urls, inputs, clock=lambda: END_OF_DAY)

    def pool_used(self, pools: PoolTable, now: int) -> dict[str, int]:
        report = reports.pool_usage(self.store, reports.load_names(self.store), pools, now)
        return {p: s.used for p, s in report.pools.items()}


@pytest.fixture(params=["sqlite", "postgresql"])
def make_org(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[Callable[[simulator.Simulator], None] | None], Org]]:
    orgs: list[Org] = []
    with fresh_database(request, request.param, tmp_path) as url:
        sim = simulator.build(seed=7, days=20, clock=lambda: END_OF_DAY)
        with BackgroundServer(sim) as upstream:
            client = AdminClient(ADMIN_KEY, upstream.url + "/v1", retry=FAST_RETRY)

            def make(scenario: Callable[[simulator.Simulator], None] | None = None) -> Org:
                if scenario is not None:
                    scenario(sim)
                org = Org(url, sim, client)
                org.sync()
                orgs.append(org)
                return org

            yield make
            client.close()
            for org in orgs:
                for store in org.stores:
                    store.close()


def hours_of_day() -> list[int]:
    return [DAY0 + h * HOUR + 30 * 60 for h in range(24)]


def pools_crossing_one_threshold_an_hour(org: Org) -> PoolTable:
    """Pool limits at which today's usage crosses 50, 80 and 100 % in three different hours."""
    table = load_pool_table(None)
    by_hour = [org.pool_used(table, t) for t in hours_of_day()]
    limits = {}
    for pool in by_hour[-1]:
        for limit in sorted({used[pool] for used in by_hour if used[pool]}, reverse=True):
            crossings = [
                next(h for h, used in enumerate(by_hour) if used[pool] * 100 >= t * limit)
                for t in (50, 80, 100)
            ]
            if len(set(crossings)) == 3:
                limits[pool] = limit
                break
        assert pool in limits, f"{pool}: no limit crosses the thresholds in different hours"
    return dataclasses.replace(table, limits={"1-2": limits, "3-5": limits})


POOLS_ONLY = parse_rules("spikes: []\n", "test")


def pool_titles(bodies: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(b["title"]) for b in bodies if b.get("alert", {}).get("pool"))  # type: ignore[union-attr]


def test_crossing_each_pool_threshold_sends_three_messages_per_pool_and_none_after_a_restart(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        urls = [hook.apprise_url, smtp.apprise_url()]
        engine = org.engine(POOLS_ONLY, urls, pools)
        for t in hours_of_day():
            engine.run(t)
        titles = pool_titles(hook.bodies)
        assert sorted(titles) == sorted(
            f"{pool.capitalize()} pool at {t} % of today's free tokens"
            for pool in ("large", "small")
            for t in (50, 80, 100)
        )
        assert set(titles.values()) == {1}
        assert len(smtp.messages) == 6
        first = hook.bodies[0]
        assert first["alert"]["url"] == f"{BASE_URL}/?range=today"  # type: ignore[index]
        assert f"{BASE_URL}/?range=today" in str(first["message"])

        # A restart (a new engine), a re-sync of the same hours, the whole day evaluated again:
        org.sync()
        restarted = org.engine(POOLS_ONLY, urls, pools)
        for t in hours_of_day():
            restarted.run(t)
        assert len(hook.bodies) == 6
        assert len(smtp.messages) == 6


def test_two_replicas_evaluating_at_once_send_each_alert_once(make_org: Callable[..., Org]) -> None:
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    with WebhookReceiver() as hook:
        replicas = [
            org.engine(POOLS_ONLY, [hook.apprise_url], pools, store=org.open_store())
            for _ in range(2)
        ]
        failures: list[BaseException] = []

        def run(engine: AlertEngine, at: int, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                engine.run(at)
            except BaseException as error:
                failures.append(error)

        for t in hours_of_day():
            start = threading.Barrier(2)
            threads = [threading.Thread(target=run, args=(e, t, start)) for e in replicas]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            assert all(e.status.error is None for e in replicas)
        assert len(hook.bodies) == 6
        assert set(pool_titles(hook.bodies).values()) == {1}


def test_a_pool_jumping_past_several_thresholds_at_once_sends_only_the_highest(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    with WebhookReceiver() as hook:
        engine = org.engine(POOLS_ONLY, [hook.apprise_url], pools)
        engine.run(END_OF_DAY)
        assert sorted(pool_titles(hook.bodies)) == [
            "Large pool at 100 % of today's free tokens",
            "Small pool at 100 % of today's free tokens",
        ]
        with org.store.transaction() as conn:
            recorded = alert_rows.recent(conn, DAY0)
        assert len(recorded) == 6
        assert sum(a["superseded"] for a in recorded) == 4
        assert all(not a["deliveries"] for a in recorded if a["superseded"])


def leak_mei_batch(sim: simulator.Simulator) -> None:
    sim.org.leak("mei-batch", DAY0 + 14 * HOUR, requests=150)


def test_a_spike_on_one_key_sends_one_message_naming_the_key_and_its_person(
    make_org: Callable[..., Org],
) -> None:
    org = make_org(leak_mei_batch)
    with WebhookReceiver() as hook:
        engine = org.engine(parse_rules("pools: {enabled: false}\n", "test"), [hook.apprise_url])
        for t in hours_of_day():
            engine.run(t)
        org.engine(parse_rules("pools: {enabled: false}\n", "test"), [hook.apprise_url]).run()
    spikes = [b for b in hook.bodies if b["alert"]["subject"]]  # type: ignore[index]
    assert len(spikes) == 1, [b["title"] for b in spikes]
    spike = spikes[0]
    assert "mei-batch" in str(spike["title"])
    assert "Mei Chen" in str(spike["title"])
    assert "mei-batch" in str(spike["message"])
    assert "Mei Chen" in str(spike["message"])
    payload = spike["alert"]
    assert payload["person"] == "Mei Chen"  # type: ignore[index]
    assert payload["window_start"] == DAY0 + 14 * HOUR  # type: ignore[index]
    assert payload["tokens"] > 5 * payload["usual_tokens"]  # type: ignore[index,operator]


def test_a_failed_delivery_is_retried_with_backoff_then_shown_as_failed(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    with WebhookReceiver() as hook:
        hook.status = 503
        engine = org.engine(POOLS_ONLY, [hook.apprise_url], pools)
        engine.run(DAY0 + 23 * HOUR)  # both pools past 100 %: two alerts, sent to one channel
        assert hook.bodies == []
        health = engine.health()["deliveries"]
        assert health["retrying"] == 2
        assert health["sent"] == 0
        with org.store.transaction() as conn:
            troubled = alert_rows.troubled(conn)
        assert {t["attempts"] for t in troubled} == {1}
        assert all("503" in t["last_error"] for t in troubled)

        # Not before the backoff; then delivered once the receiver is back.
        assert engine.deliver_due(DAY0 + 23 * HOUR + RETRY_DELAYS[0] - 1) == (0, 0)
        hook.status = 200
        assert engine.deliver_due(DAY0 + 23 * HOUR + RETRY_DELAYS[0]) == (2, 0)
        assert len(hook.bodies) == 2
        # Each delivery carries one idempotency key, the same on its failed and its sent attempt.
        keys = [b["idempotency_key"] for b in hook.bodies]
        assert len(set(keys)) == 2
        assert sorted(hook.attempt_keys) == sorted(keys * 2)
        assert engine.health()["deliveries"]["retrying"] == 0

    # A receiver that never comes back: given up after the last retry, and shown.
    with WebhookReceiver() as dead:
        dead.status = 500
        other = org.engine(parse_rules("spikes: []\n", "test"), [dead.apprise_url], pools)
        with org.store.transaction() as conn:
            conn.execute(alert_rows.schema.alert_deliveries.delete())
            conn.execute(alert_rows.schema.alerts_sent.delete())
        t = DAY0 + 23 * HOUR
        other.run(t)
        for delay in RETRY_DELAYS:
            t += delay
            other.deliver_due(t)
        counts = other.health()["deliveries"]
        assert counts["failed"] == 2
        assert counts["pending"] == 0
        assert dead.bodies == []


def test_a_persons_budget_alert_goes_to_their_email_with_the_billed_figure(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    names = reports.load_names(org.store)
    start = reports.forecast(org.store, names, END_OF_DAY)["month_start"]
    keys = reports.keys_of_person(org.store, names, start, DAY0 + DAY, "Jane Smith")
    summary = reports.summary(org.store, names, start, DAY0 + DAY, where={"api_key_id": keys})
    billed = summary["billed_usd"]
    assert billed > 0
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        rules = parse_rules(
            f"owner_email: '{smtp.apprise_url('nobody@example.com')}'\n"
            "pools: {enabled: false}\nspikes: []\n"
            "budgets:\n"
            f"  - {{person: Jane Smith, limit: {billed * 2}, thresholds: [50, 100],"
            " notify_owner: true}\n",
            "test",
        )
        org.engine(rules, [hook.apprise_url]).run(END_OF_DAY)
        org.engine(rules, [hook.apprise_url]).run(END_OF_DAY)  # a restart: nothing more
    assert [b["title"] for b in hook.bodies] == [
        f"Budget 50 % reached: person Jane Smith, {m_label(END_OF_DAY)}"
    ]
    payload = hook.bodies[0]["alert"]
    assert payload["used"] == str(billed)  # type: ignore[index]
    assert payload["percent"] == 50.0  # type: ignore[index]
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["X-Envelope-To"] == "jane.smith@example.com"
    assert smtp.messages[0]["Subject"] == hook.bodies[0]["title"]


def reports_day(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def m_label(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m")


def test_token_budgets_on_a_key_and_the_forecast_fire_once_per_period(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    names = reports.load_names(org.store)
    ci_bot = next(k["id"] for k in org.store.api_keys() if k["name"] == "ci-bot")
    today = reports.usage_totals(
        org.store, names, DAY0, DAY0 + DAY, ["api_key"], where={"api_key_id": [ci_bot]}
    )[0]["tokens"]
    projected = reports.forecast(org.store, names, END_OF_DAY)["organization"][
        "projected_month_end"
    ]
    rules = parse_rules(
        "pools: {enabled: false}\nspikes: []\n"
        f"budgets:\n  - {{key: {ci_bot}, limit: {today}, unit: tokens, period: day}}\n"
        f"forecasts:\n  - {{limit: {projected - 1}}}\n  - {{name: high, limit: {projected}}}\n",
        "test",
    )
    with WebhookReceiver() as hook:
        for t in [*hours_of_day(), END_OF_DAY]:
            org.engine(rules, [hook.apprise_url]).run(t)  # a restart before each
    kinds = Counter(str(b["title"]).split(":")[0] for b in hook.bodies)
    assert set(kinds.values()) == {1}
    assert {"Budget 100 % reached", "Month-end forecast over budget"} <= set(kinds)
    with org.store.transaction() as conn:
        recorded = Counter(a["dedupe_key"] for a in alert_rows.recent(conn, DAY0))
    day = reports_day(DAY0)
    assert recorded == {
        f"budget:key:{ci_bot}:tokens:day:billed:80:{day}": 1,
        f"budget:key:{ci_bot}:tokens:day:billed:100:{day}": 1,
        f"forecast:organization:organization:{m_label(DAY0)}": 1,
    }
    forecast = next(b for b in hook.bodies if str(b["title"]).startswith("Month-end"))
    assert forecast["alert"]["projected_month_end"] == str(projected)  # type: ignore[index]


def test_the_daily_digest_goes_once_after_its_time(make_org: Callable[..., Org]) -> None:
    org = make_org()
    rules = parse_rules('pools: {enabled: false}\nspikes: []\ndigest: {at: "08:00"}\n', "test")
    with WebhookReceiver() as hook:
        engine = org.engine(rules, [hook.apprise_url])
        engine.run(DAY0 + 7 * HOUR)
        assert hook.bodies == []
        engine.run(DAY0 + 8 * HOUR)
        engine.run(DAY0 + 20 * HOUR)
    assert len(hook.bodies) == 1
    digest = hook.bodies[0]
    yesterday = reports.summary(org.store, reports.load_names(org.store), DAY0 - DAY, DAY0)
    assert digest["alert"]["tokens"] == yesterday["totals"]["tokens"]  # type: ignore[index]
    assert digest["alert"]["billed_usd"] == str(yesterday["billed_usd"])  # type: ignore[index]
    top = yesterday["by"]["person"][0]
    assert f"{top['person']} {top['tokens']:,} (${top['billed_cost']:,.2f})" in str(
        digest["message"]
    )


def test_the_cli_sends_a_test_message_and_evaluates_on_demand(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    with WebhookReceiver() as hook:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "ALERT_URLS": hook.apprise_url,
        }

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "usage_tracker", "alerts", *args]
            return subprocess.run(
                command, env=env, cwd=tmp_path, capture_output=True, text=True, check=False
            )

        tested = cli("test")
        assert tested.returncode == 0, tested.stderr
        assert tested.stdout.startswith("sent: json://127.0.0.1:")
        assert "/hook" not in tested.stdout  # a webhook's path is its secret: never shown
        assert [b["title"] for b in hook.bodies] == ["Test alert from the OpenAI Usage Tracker"]
        ran = cli("run")
        assert ran.returncode == 0, ran.stderr
        assert "0 new alert(s), 0 sent, 0 failed" in ran.stdout  # an empty database
        hook.status = 500
        failed = cli("test")
        assert failed.returncode == 1
        assert "failed: json://127.0.0.1:" in failed.stdout


def test_a_pool_projected_to_run_out_before_the_set_time_warns_once_before_it_does(
    make_org: Callable[..., Org],
) -> None:
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    rules = parse_rules('pools: {thresholds: [1000], run_out_before: "23:00"}\nspikes: []\n', "t")
    with WebhookReceiver() as hook:
        for t in hours_of_day():
            org.engine(rules, [hook.apprise_url], pools).run(t)
    warned = Counter(str(b["alert"]["pool"]) for b in hook.bodies)  # type: ignore[index]
    assert warned == {"large": 1, "small": 1}
    for body in hook.bodies:
        alert = body["alert"]
        assert alert["used_tokens"] < alert["limit_tokens"]  # type: ignore[index,operator]
        assert alert["exhausted_at"] < DAY0 + 23 * HOUR  # type: ignore[index,operator]
        assert str(body["title"]).endswith("pool will run out before 23:00 UTC")


def test_debug_logs_and_labels_never_show_a_webhooks_secret_path(tmp_path: Path) -> None:
    """Apprise's own debug lines held whole webhook URLs (Slack's and Discord's tokens are in
    the path); a JSON webhook's path and an ntfy topic were shown in labels."""
    import os
    import subprocess
    import sys

    from usage_tracker.alerts.channels import Channel

    with WebhookReceiver() as hook:
        url = hook.apprise_url + "/SecretPathSentinel"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "ALERT_URLS": url,
            "LOG_LEVEL": "debug",
        }
        done = subprocess.run(
            [sys.executable, "-m", "usage_tracker", "alerts", "test"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert len(hook.bodies) == 1
    assert "SecretPathSentinel" not in done.stdout + done.stderr
    assert "SecretTopic" not in Channel("ntfy://ntfy.sh/SecretTopic").label


def test_an_alert_recorded_with_no_channel_is_sent_once_when_a_channel_is_added(
    make_org: Callable[..., Org],
) -> None:
    """A threshold crossed before any channel existed is recorded 'no channel'; once a channel
    appears, what still stands is delivered there once, and what passed is not sent late."""
    org = make_org()
    pools = pools_crossing_one_threshold_an_hour(org)
    hours = hours_of_day()
    silent = org.engine(POOLS_ONLY, [], pools)
    for t in hours:
        report = silent.run(t)
    assert report.why_nothing_was_sent(0) is not None
    with org.store.transaction() as conn:
        recorded = alert_rows.recent(conn, 0)
    assert len(recorded) == 6  # 50/80/100 % of both pools
    assert all(a["deliveries"] == [] for a in recorded)
    with WebhookReceiver() as hook:
        engine = org.engine(POOLS_ONLY, [hook.apprise_url], pools)
        first = engine.run(hours[-1])
        again = engine.run(hours[-1])  # and a second replica, or a restart, sends nothing more
        org.engine(POOLS_ONLY, [hook.apprise_url], pools, store=org.open_store()).run(hours[-1])
        titles = pool_titles(hook.bodies)
    # At the day's end each pool stands at 100 %: that is sent, once; 50 and 80 % are
    # superseded by it and are not sent late.
    assert sorted(titles) == [
        "Large pool at 100 % of today's free tokens",
        "Small pool at 100 % of today's free tokens",
    ]
    assert set(titles.values()) == {1}
    assert (len(first.caught_up), first.sent, len(first.recorded)) == (2, 2, 0)
    assert (again.caught_up, again.sent) == ([], 0)
    assert again.why_nothing_was_sent(1) == (
        "each standing alert was sent before (an alert fires once per threshold and period)"
    )
    # The next day nothing stands: a new channel gets nothing from yesterday.
    with WebhookReceiver() as late:
        org.engine(POOLS_ONLY, [late.apprise_url], pools).run(hours[-1] + DAY)
        assert late.bodies == []


def test_sync_once_evaluates_the_alerts_and_says_why_alerts_run_sent_nothing(
    tmp_path: Path,
) -> None:
    """What a cron job runs, `sync --once`, evaluates and delivers like the sync loop does."""
    with BackgroundServer(simulator.build(seed=7, days=5)) as upstream:  # on the wall clock
        _sync_once_evaluates(tmp_path, upstream.url + "/v1")


def _sync_once_evaluates(tmp_path: Path, sim_url: str) -> None:
    import os
    import subprocess
    import sys

    rules = tmp_path / "alerts.yaml"
    rules.write_text(
        "budgets:\n  - {name: tiny, limit: 0.01, cost: estimated, thresholds: [100]}\n"
        "spikes: []\npools: {enabled: false}\nlimits: {enabled: false}\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cron.db'}",
        "OPENAI_ADMIN_KEY": ADMIN_KEY,
        "OPENAI_BASE_URL": sim_url,
        "ALERTS_FILE": str(rules),
        "BACKFILL_DAYS": "3",
    }

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "usage_tracker", *args]
        return subprocess.run(
            command,
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    synced = cli("sync", "--once")
    assert synced.returncode == 0, synced.stderr
    assert "alerts: 1 new, 0 sent, 0 failed" in synced.stdout
    ran = cli("alerts", "run")
    assert "nothing sent: no channel is set" in ran.stdout
    with WebhookReceiver() as hook:
        synced = cli("sync", "--once", ALERT_URLS=hook.apprise_url)
        assert synced.returncode == 0, synced.stderr
        assert "alerts: 0 new, 1 sent, 0 failed" in synced.stdout
        assert len(hook.bodies) == 1, hook.bodies
        ran = cli("alerts", "run", ALERT_URLS=hook.apprise_url)
        assert "nothing sent: each standing alert was sent before" in ran.stdout
        assert len(hook.bodies) == 1

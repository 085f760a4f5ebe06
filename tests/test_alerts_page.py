"""The Alerts page and /api/alerts: admins only, channels redacted, a test message that really
arrives, and delivery trouble shown on the page and in /api/health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from usage_tracker import runtime
from usage_tracker.people.names import KeyMappings
from usage_tracker.providers.openai.pools import load_pool_table
from usage_tracker.settings import load_settings
from usage_tracker.store import Store

from .conftest import LiveApp, latest, live_app
from .receivers import WebhookReceiver
from .test_auth import ADMIN, JANE, VIEWER, _add_account, _form_values, signed_in

PASSWORD_IN_URL = "hunter2-webhook-password"


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, hook: WebhookReceiver) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("alerts")
    url = f"sqlite:///{workdir / 'alerts.db'}"
    Store.open(url).close()
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer"), (JANE, "member")):
        _add_account(url, email, role)
    rules = workdir / "alerts.yaml"
    rules.write_text(
        "budgets:\n  - {name: org-day, limit: 1, period: day, cost: estimated}\n"
        'digest: {at: "00:00"}\n'
    )
    webhook = f"json://alerts:{PASSWORD_IN_URL}@127.0.0.1:{hook.port}/hook"
    # Stopped at 18:00 UTC: by then every simulated day has spent past the $1 budget.
    with live_app(
        url, workdir, now=latest(18), auth_mode="password", alerts_file=rules, alert_urls=webhook
    ) as live:
        yield live


def _evaluate_as_a_replica(app: LiveApp) -> None:
    """What the serving process's sync loop does after a sync, from another process."""
    settings = load_settings(
        database_url=app.database_url,
        alerts_file=app.workdir / "alerts.yaml",
        alert_urls=f"json://alerts:{PASSWORD_IN_URL}@127.0.0.1:1/unreachable",
    )
    store = Store.open(app.database_url)
    rules, urls = runtime.alert_rules(settings)
    engine = runtime.alert_engine(
        settings,
        store,
        rules=rules,
        urls=urls,
        pools=load_pool_table(None),
        mappings=KeyMappings(app.workdir / "none.json"),
        clock=lambda: app.now,
    )
    engine.run()
    store.close()


@pytest.mark.parametrize("email", [VIEWER, JANE])
def test_only_admins_see_the_alerts(app: LiveApp, email: str) -> None:
    with signed_in(app, email) as client:
        assert client.get("/alerts").status_code == 403
        assert client.get("/api/alerts").status_code == 403
        assert 'href="/alerts"' not in client.get("/people").text


def test_admins_see_the_rules_and_send_a_test_message_that_arrives(
    app: LiveApp, hook: WebhookReceiver
) -> None:
    with signed_in(app, ADMIN) as admin:
        page = admin.get("/alerts")
        assert page.status_code == 200
        assert "org-day" in page.text
        assert "at 80 %, 100 % of $1.00 per UTC day, estimated cost" in page.text
        assert f"json://alerts:****@127.0.0.1:{hook.port}/…" in page.text  # the path left out
        assert PASSWORD_IN_URL not in page.text
        before = len(hook.bodies)
        assert admin.post("/alerts/test").status_code == 403  # no CSRF token
        tested = admin.post("/alerts/test", data=_form_values(page.text))
        assert tested.status_code == 200
        assert "sent" in tested.text
        assert len(hook.bodies) == before + 1
        assert hook.bodies[-1]["title"] == "Test alert from the OpenAI Usage Tracker"


def test_fired_alerts_and_failing_deliveries_show_on_the_page_and_in_health(
    app: LiveApp,
) -> None:
    _evaluate_as_a_replica(app)  # its channel is unreachable: every delivery fails
    with signed_in(app, ADMIN) as admin:
        report = admin.get("/api/alerts").json()
        titles = [a["title"] for a in report["recent"]]
        assert any(t.startswith("Budget 100 % reached: the organization") for t in titles)
        assert any(t.startswith("Usage digest for") for t in titles)
        assert report["failing"]
        assert all(d["status"] == "pending" and d["attempts"] == 1 for d in report["failing"])
        health = admin.get("/api/health").json()
        assert health["status"] == "degraded"
        assert "being retried" in health["alerts"]["problem"]
        page = admin.get("/alerts").text
        assert "Failing deliveries" in page
        assert "retry at" in page
        for text in (page, str(report), str(health)):
            assert PASSWORD_IN_URL not in text
        metrics = {
            (s.name, tuple(s.labels.values())): s.value
            for f in text_string_to_metric_families(admin.get("/metrics").text)
            for s in f.samples
        }
        counts = health["alerts"]["deliveries"]
        assert counts["retrying"] == len(report["failing"])
        assert (
            metrics[("usage_tracker_alert_deliveries_pending", ("retrying",))] == counts["retrying"]
        )
        assert (
            metrics[("usage_tracker_alert_deliveries_pending", ("pending",))] == counts["pending"]
        )
        assert metrics[("usage_tracker_alert_deliveries_total", ("sent",))] == counts["sent"]
    signed_out = httpx2.get(app.url + "/api/health").json()
    assert signed_out == {"status": "degraded"}


def test_alert_routes_follow_the_rules_of_every_route(app: LiveApp, tmp_path: Path) -> None:
    with httpx2.Client(base_url=app.url) as anonymous:
        assert anonymous.get("/api/alerts").status_code == 401
        assert anonymous.get("/alerts", follow_redirects=False).status_code == 303


def test_admins_set_rules_and_channels_on_the_page_and_every_process_uses_them(
    tmp_path: Path,
) -> None:
    """No ALERTS_FILE, no ALERT_URLS: rules and a channel set on the page are stored, audited,
    used by the serving process and by any other (a replica, `alerts run`), and the channel's
    secret is never shown again."""
    from usage_tracker.store import alerts as alert_rows
    from usage_tracker.store import people as audit

    url = f"sqlite:///{tmp_path / 'page.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    with (
        WebhookReceiver() as hook,
        live_app(url, tmp_path, now=latest(18), auth_mode="password") as app,
        signed_in(app, ADMIN) as admin,
    ):
        page = admin.get("/alerts")
        assert "No channel is set" in page.text
        form = _form_values(page.text)
        bad = admin.post(
            "/alerts/rules",
            data={
                "csrf_token": form["csrf_token"],
                "rules": "budgets:\n  - {name: x, limit: -1}\n",
            },
        )
        assert bad.status_code == 400
        assert "the rules set on the Alerts page, line 2, column" in bad.text
        rules = (
            "budgets:\n  - {name: org-day, limit: 1, period: day, cost: estimated}\nspikes: []\n"
            "limits: {enabled: false}\n"
        )
        saved = admin.post("/alerts/rules", data={"csrf_token": form["csrf_token"], "rules": rules})
        assert saved.status_code == 303
        assert "org-day" in admin.get("/alerts").text
        secret = f"json://alerts:{PASSWORD_IN_URL}@127.0.0.1:{hook.port}/hook"
        wrong = admin.post(
            "/alerts/channels", data={"csrf_token": form["csrf_token"], "url": "nope://x"}
        )
        assert wrong.status_code == 400
        assert "nope://…" in wrong.text
        added = admin.post(
            "/alerts/channels", data={"csrf_token": form["csrf_token"], "url": secret}
        )
        assert added.status_code == 303
        page = admin.get("/alerts")
        assert f"json://alerts:****@127.0.0.1:{hook.port}/…" in page.text
        assert PASSWORD_IN_URL not in page.text
        tested = admin.post("/alerts/test", data={"csrf_token": form["csrf_token"]})
        assert "sent" in tested.text
        assert hook.bodies[-1]["title"] == "Test alert from the OpenAI Usage Tracker"
        # Another process (a replica, cron's `sync --once`) reads the same rules and channel.
        settings = load_settings(database_url=url)
        store = Store.open(url)
        with store.transaction() as conn:
            stored = alert_rows.settings(conn)
        found_rules, urls = runtime.alert_rules(settings, stored)
        assert urls == (secret,)
        assert [b.rule_id for b in found_rules.budgets] == ["org-day"]
        engine = runtime.alert_engine(
            settings,
            store,
            rules=found_rules,
            urls=urls,
            pools=load_pool_table(None),
            mappings=KeyMappings(tmp_path / "none.json"),
            clock=lambda: app.now,
        )
        assert engine.run().sent == 2  # the budget at 80 % and 100 % of $1 today
        # Removed on the page, the channel is gone for everyone.
        channel_id = next(iter(k for k in stored if k.startswith("channel:"))).split(":", 1)[1]
        removed = admin.post(
            f"/alerts/channels/{channel_id}/remove", data={"csrf_token": form["csrf_token"]}
        )
        assert removed.status_code == 303
        assert "No channel is set" in admin.get("/alerts").text
        with store.transaction() as conn:
            actions = [c["action"] for c in reversed(audit.recent_changes(conn))]
            assert "channel:" not in str(alert_rows.settings(conn))
        store.close()
    assert actions == ["alerts.rules", "alerts.channel.add", "alerts.channel.remove"]
    assert PASSWORD_IN_URL not in str(actions)


def test_with_alerts_file_set_the_page_shows_its_rules_and_refuses_others(app: LiveApp) -> None:
    with signed_in(app, ADMIN) as admin:
        page = admin.get("/alerts")
        assert "which wins over rules set here" in page.text
        assert 'id="rules-form"' not in page.text
        refused = admin.post(
            "/alerts/rules", data={"csrf_token": _form_values(page.text)["csrf_token"], "rules": ""}
        )
        assert refused.status_code == 409

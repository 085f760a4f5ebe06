"""The Alerts page and /api/alerts: admins only, channels redacted, a test message that really
arrives, and delivery trouble shown on the page and in /api/health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from usage_tracker import runtime
from usage_tracker.names import KeyMappings
from usage_tracker.pools import load_pool_table
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

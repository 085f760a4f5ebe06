"""The limits each provider reports, in view: read by the sync with the admin key the tracker
has, stored with the time read, shown on /api/limits, the Limits page, the Projects table and
/metrics, and told by the ``limit`` alert (issue 20, "see the limits")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser
from prometheus_client.parser import text_string_to_metric_families

from usage_tracker import simulator
from usage_tracker.alerts.evaluate import Inputs, limit_alerts
from usage_tracker.alerts.rules import LimitRule
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.pools import load_pool_table
from usage_tracker.reports import load_names
from usage_tracker.settings import load_settings
from usage_tracker.simulator.openai.limits import RATE_LIMITS
from usage_tracker.store import Store
from usage_tracker.sync import LIMITS_SECONDS, sync_once
from usage_tracker.web import create_app
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, LiveApp, latest, live_app
from .test_auth import ADMIN, JANE, VIEWER, _add_account, signed_in
from .test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

NOW = latest(18)


def _month_spent(sim: simulator.Simulator, now: int) -> dict[str | None, Decimal]:
    """The simulated organization's billed USD this UTC month: per project, and None: all."""
    day = dt.datetime.fromtimestamp(now, dt.UTC)
    start = int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp())
    by_project = sim.org.cost_truth(start, now + 1, ("project_id",))
    spent: dict[str | None, Decimal] = {str(k[0]): v for k, v in by_project.items()}
    spent[None] = sum(by_project.values(), Decimal(0))
    return spent


def test_the_limits_served_are_the_simulators_with_the_months_spend(
    database_url: str, tmp_path: Path
) -> None:
    """Every hard limit, alert and rate limit the organization set, no more: amounts, the
    month's billed cost of its subject to the cent, the share, and whether it enforces."""
    with live_app(database_url, tmp_path, now=NOW) as app:
        served = httpx2.get(app.url + "/api/limits").json()
        sim = app.sim
    pids, set_ = list(sim.org.projects), sim.limits
    spent = _month_spent(sim, NOW)
    hard = {r["project_id"]: r for r in served["limits"] if r["kind"] == "spend_limit"}
    expected_hard: dict[str | None, Decimal] = {
        pid: Decimal(cents) / 100 for pid, cents in set_.project_cents.items()
    }
    assert set_.organization_cents is not None
    expected_hard[None] = Decimal(set_.organization_cents) / 100
    assert 0 < len(set_.project_cents) < len(pids)  # some projects have none
    assert {p: Decimal(str(r["amount_usd"])) for p, r in hard.items()} == expected_hard
    for project, row in hard.items():
        used = spent.get(project, Decimal(0))
        assert Decimal(str(row["used_usd"])) == used, project
        assert row["percent"] == float(round(used * 100 / expected_hard[project], 1))
        assert row["enforcing"] is (used >= expected_hard[project]), project
    assert any(r["percent"] >= 80 for r in hard.values()), "the simulator's limits all idle"
    alerts = sorted(
        (r["project_id"] or "", Decimal(str(r["amount_usd"])))
        for r in served["limits"]
        if r["kind"] == "spend_alert"
    )
    assert alerts == sorted(
        [("", Decimal(c) / 100) for _, c in set_.organization_alerts]
        + [(p, Decimal(c) / 100) for p, found in set_.project_alerts.items() for _, c in found]
    )
    rates = [r for r in served["limits"] if r["kind"] == "rate_limit"]
    active = [p for p in pids if sim.org.projects[p].archived_at is None]
    assert len(rates) == len(RATE_LIMITS) * len(active)
    first = {r["model"]: r["figures"] for r in rates if r["project_id"] == active[0]}
    assert first == {r["model"]: {k: v for k, v in r.items() if k != "model"} for r in RATE_LIMITS}
    assert served["connections"] == [
        {
            "name": "openai",
            "provider": "openai",
            "read_at": NOW,
            "error": None,
            "reported": True,
        }
    ]


def test_a_key_refused_the_limits_still_syncs_and_says_so(tmp_path: Path) -> None:
    """A 403 on the limits' endpoints leaves usage synced, the limits read before in place,
    and the refusal in health and on the page, in words that say what to do."""
    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sim = simulator.build(seed=7, days=40, clock=lambda: NOW)
    with BackgroundServer(sim) as upstream:
        client = AdminClient(ADMIN_KEY, upstream.url + "/v1", retry=FAST_RETRY)
        store = Store.open(database_url)
        assert sync_once(store, client, now=NOW).limits_error is None
        before = store.limits()
        sim.limits_refused = True
        soon = sync_once(store, client, now=NOW + 60)  # read again only after LIMITS_SECONDS
        assert soon.limits_error is None
        later = sync_once(store, client, now=NOW + LIMITS_SECONDS)
        assert later.errors == []  # every source synced
        assert later.limits_error is not None
        assert "refused this admin key the limits (HTTP 403)" in later.limits_error
        assert store.limits() == before
        store.close()
        settings = load_settings(
            database_url=database_url,
            openai_admin_key=ADMIN_KEY,
            openai_base_url=upstream.url + "/v1",
            key_mappings_file=tmp_path / "api_key_mappings.json",
            auth_mode="none",
        )
        served = create_app(settings, client=client, run_sync=False, clock=lambda: NOW + 960)
        with BackgroundServer(served) as app:
            health = httpx2.get(app.url + "/api/health").json()
            page = httpx2.get(app.url + "/limits").text
        client.close()
    (line,) = health["connections"]
    assert "refused this admin key the limits" in (line["limits_error"] or "")
    assert health["status"] == "ok"  # usage is whole: the limits are not a source
    assert "Limits not read:" in page
    assert "refused this admin key the limits" in page


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("limits")
    url = f"sqlite:///{workdir / 'limits.db'}"
    Store.open(url).close()
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer"), (JANE, "member")):
        _add_account(url, email, role)
    with live_app(url, workdir, now=NOW, auth_mode="password") as live:
        yield live


def test_admins_and_viewers_see_the_limits_and_members_do_not(app: LiveApp) -> None:
    for email, status in ((ADMIN, 200), (VIEWER, 200), (JANE, 403)):
        with signed_in(app, email) as client:
            assert client.get("/api/limits").status_code == status, email
            assert client.get("/limits").status_code == status, email
            nav = client.get("/").text
            assert ('href="/limits"' in nav) is (status == 200), email
            metrics = client.get("/metrics").text
            assert ("usage_tracker_limit_usd{" in metrics) is (status == 200), email
    assert httpx2.get(app.url + "/api/limits").status_code == 401


def test_the_metrics_carry_each_limit_and_its_subjects_spend(app: LiveApp) -> None:
    with signed_in(app, ADMIN) as client:
        served = client.get("/api/limits").json()["limits"]
        metrics = client.get("/metrics").text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    expected: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for row in served:
        if row["kind"] == "rate_limit":
            continue
        subject = {"connection": "openai", "project": row["project_id"] or ""}
        limit = {**subject, "kind": row["kind"], "ident": row["ident"]}
        expected.setdefault("usage_tracker_limit_usd", {})[tuple(sorted(limit.items()))] = float(
            row["amount_usd"]
        )
        key = tuple(sorted(subject.items()))
        expected.setdefault("usage_tracker_limit_used_usd", {})[key] = float(row["used_usd"])
        if row["kind"] == "spend_limit":
            flag = 1.0 if row["enforcing"] else 0.0
            expected.setdefault("usage_tracker_limit_enforcing", {})[key] = flag
    for name, values in expected.items():
        assert samples[name] == values, name


def test_the_limit_alert_fires_once_per_threshold_limit_and_month(app: LiveApp) -> None:
    store = Store.open(app.database_url)
    names = load_names(store)
    inputs = Inputs(
        store=store,
        names=names,
        pools=load_pool_table(),
        usage_tier="1-2",
        sharing_projects=(),
        base_url="http://tracker",
        connection="openai",
    )
    with signed_in(app, ADMIN) as client:
        hard = [r for r in client.get("/api/limits").json()["limits"] if r["kind"] == "spend_limit"]
    month = dt.datetime.fromtimestamp(NOW, dt.UTC).strftime("%Y-%m")
    expected = {
        f"limit:openai:{r['project_id'] or 'organization'}:{t}:{month}"
        for r in hard
        for t in (80, 100)
        if r["percent"] >= t
    }
    fired = list(limit_alerts(LimitRule(), inputs, NOW))
    assert {f.dedupe_key for f in fired} == expected
    assert expected  # the simulator's limits are reached
    again = {f.dedupe_key for f in limit_alerts(LimitRule(), inputs, NOW + 3600)}
    assert again == expected  # the same keys: the engine records each once a month
    over = next(f for f in fired if f.payload["threshold_percent"] == 100)
    assert "hard spend limit this month" in over.message
    assert over.payload["enforcing"] is True
    store.close()


def test_the_limits_page_and_the_projects_limits_read_and_fit(
    app: LiveApp,
    browser: Browser,  # noqa: F811
) -> None:
    """The Limits page at 1440 and 360 px, dark and light (screenshots in
    test-artifacts/pages/), and each limited project's line in the dashboard's Projects table."""
    from .test_pages_browser import CONTRAST, _cut, _signed_in, new_page

    del new_page
    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    with signed_in(app, ADMIN) as client:
        served = client.get("/api/limits").json()["limits"]
    hard = [r for r in served if r["kind"] == "spend_limit" and r["project_id"]]
    for scheme in ("dark", "light"):
        for width in (1440, 360):
            watched = _signed_in(browser, app, "viewer", width, scheme)
            page = watched.page
            where = f"{width} {scheme}"
            page.goto(app.url + "/limits")
            rows = page.locator("#spend-openai tbody tr").all()
            assert len(rows) == len([r for r in served if r["kind"] != "rate_limit"]), where
            assert page.evaluate(CONTRAST) == [], where
            assert _cut(page) == [], where
            page.locator("details.rate-limits summary").click()
            page.screenshot(path=shots / f"limits-{width}-{scheme}.png", full_page=True)
            page.goto(app.url + "/?range=mtd")
            shown = page.locator("#table-project .limit-of").all_inner_texts()
            assert len(shown) == len(hard), where
            assert all("hard limit this month" in s for s in shown), where
            assert watched.errors == [], where
            page.context.close()


def test_the_simulators_limits_answer_as_the_pinned_sdks_types() -> None:
    """Each limits answer validates as the openai SDK's own model, with no field it lacks, and
    every request the client makes for them is one the SDK builds (its paths)."""
    from openai.types.admin.organization import OrganizationSpendAlert, OrganizationSpendLimit
    from openai.types.admin.organization.projects import (
        ProjectRateLimit,
        ProjectSpendAlert,
        ProjectSpendLimit,
    )

    sim = simulator.build(seed=7, days=40, clock=lambda: NOW)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with BackgroundServer(sim) as upstream, httpx2.Client(headers=headers) as http:
        base = upstream.url + "/v1/organization"
        pid = next(iter(sim.limits.project_cents))
        bare = next(p for p in sim.org.projects if p not in sim.limits.project_cents)
        checks = [
            (f"{base}/spend_limit", OrganizationSpendLimit, False),
            (f"{base}/spend_alerts", OrganizationSpendAlert, True),
            (f"{base}/projects/{pid}/spend_limit", ProjectSpendLimit, False),
            (f"{base}/projects/{pid}/spend_alerts", ProjectSpendAlert, True),
            (f"{base}/projects/{pid}/rate_limits", ProjectRateLimit, True),
        ]
        for url, model, listed in checks:
            body = http.get(url).json()
            items = body["data"] if listed else [body]
            assert items, url
            for item in items:
                model.model_validate(item)
                assert set(item) <= set(model.model_fields), (
                    url,
                    set(item) - set(model.model_fields),
                )
        unset = http.get(f"{base}/projects/{bare}/spend_limit")
        assert unset.status_code == 404
        assert http.get(f"{base}/projects/proj_nope/rate_limits").status_code == 404
        with AdminClient(ADMIN_KEY, upstream.url + "/v1", retry=FAST_RETRY) as client:
            client.limits([pid, bare])
    asked = {path for _, path, _ in sim.log}
    assert asked >= {
        "/v1/organization/spend_limit",
        "/v1/organization/spend_alerts",
        f"/v1/organization/projects/{bare}/spend_limit",
        f"/v1/organization/projects/{pid}/rate_limits",
    }

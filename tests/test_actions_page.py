"""Actions from the Alerts page (issue 20): a proposal shown to admins with Approve and Dismiss
(CSRF-checked, audited), the write done when approved, Resume; viewers see the actions, a
member sees that their key was paused, why, and whom to ask; nobody else may decide."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from playwright.sync_api import Browser

from usage_tracker.settings import load_settings
from usage_tracker.simulator.openai.app import WRITE_KEY
from usage_tracker.store import Store
from usage_tracker.store import people as audit

from .conftest import ADMIN_KEY, LiveApp, latest, live_app
from .test_actions import World
from .test_auth import ADMIN, JANE, VIEWER, _add_account, _form_values, signed_in
from .test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

NOW = latest(18)
RULES = (
    "limits: {enabled: false}\nspikes: []\npools: {enabled: false}\n"
    "budgets:\n  - {person: Jane Smith, limit: 0.01, action: pause_keys}\n"
    "  - {name: mei-monthly, person: Mei Chen, limit: 0.01, action: pause_keys}\n"
)
"""Jane's budget is decided in the test; Mei's stays a proposal for the screenshots."""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("actions")
    url = f"sqlite:///{workdir / 'actions.db'}"
    Store.open(url).close()
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer"), (JANE, "member")):
        _add_account(url, email, role)
    rules = workdir / "alerts.yaml"
    rules.write_text(RULES)
    with live_app(
        url,
        workdir,
        now=NOW,
        auth_mode="password",
        openai_admin_write_key=WRITE_KEY,
        alerts_file=rules,
    ) as live:
        yield live


def _replica_runs(app: LiveApp) -> list[int]:
    """Another process over the same database (a second replica, or ``actions run``) records
    what the rules ask for."""
    settings = load_settings(
        database_url=app.database_url,
        openai_admin_key=ADMIN_KEY,
        openai_admin_write_key=WRITE_KEY,
        openai_base_url=app.upstream_url,
        alerts_file=app.workdir / "alerts.yaml",
        key_mappings_file=app.workdir / "api_key_mappings.json",
        auth_mode="none",
    )
    world = World(app.sim, [app.now], app.upstream_url, app.database_url, app.workdir)
    store = Store.open(app.database_url)
    recorded = world.engines(settings, store)[1].run()
    store.close()
    return recorded


def _janes(actions: list[dict[str, object]]) -> list[dict[str, object]]:
    return [a for a in actions if a["subject"] == "person:Jane Smith"]


def _janes_keys(app: LiveApp) -> dict[str, str]:
    return {k.id: k.project_id for k in app.org.keys if k.owner_email == JANE}


def test_a_proposal_is_approved_resumed_and_seen_by_each_role_as_it_may(app: LiveApp) -> None:
    keys = _janes_keys(app)
    before = {k: app.sim.controls.scopes[k] for k in keys}
    with signed_in(app, ADMIN) as admin:
        assert "May write to:" in admin.get("/alerts").text
        assert len(_replica_runs(app)) == 2  # Jane's and Mei's
        assert _replica_runs(app) == []  # recorded once
        (served,) = _janes(admin.get("/api/actions").json()["actions"])
        action_id = served["id"]
        assert served["state"] == "proposed"
        assert served["reason"].startswith("Person Jane Smith has used $")  # names keep capitals
        assert {t["key_id"] for t in served["targets"]} == set(keys)
        page = admin.get("/alerts").text
        assert f'id="action-{action_id}"' in page
        assert f"/alerts/actions/{action_id}/approve" in page
        form = _form_values(page)

        with signed_in(app, VIEWER) as viewer:
            seen = viewer.get("/api/actions").json()["actions"]
            assert action_id in [a["id"] for a in seen]
            assert len(seen) == 2
            limits_page = viewer.get("/limits").text  # the actions, without the buttons
            assert f'id="action-{action_id}"' in limits_page
            assert "/approve" not in limits_page
            assert viewer.get("/api/actions").json()["write_keys"] == ["openai"]
            refused = viewer.post(
                f"/alerts/actions/{action_id}/approve", data={"csrf_token": form["csrf_token"]}
            )
            assert refused.status_code == 403
        assert admin.post(f"/alerts/actions/{action_id}/approve", data={}).status_code == 403
        assert app.sim.writes == []  # nothing written yet

        approved = admin.post(
            f"/alerts/actions/{action_id}/approve", data={"csrf_token": form["csrf_token"]}
        )
        assert approved.status_code == 303
        assert {k: app.sim.controls.scopes[k] for k in keys} == {k: ["api.all.read"] for k in keys}
        again = admin.post(
            f"/alerts/actions/{action_id}/approve", data={"csrf_token": form["csrf_token"]}
        )
        assert again.status_code == 409
        (done,) = _janes(admin.get("/api/actions").json()["actions"])
        assert done["state"] == "done"
        assert done["decided_by"] == ADMIN
        assert all(t["changed"] for t in done["targets"])

        with signed_in(app, JANE) as jane:
            (mine,) = jane.get("/api/actions").json()["actions"]  # not Mei's
            assert mine["id"] == action_id
            assert jane.get("/api/actions").json()["write_keys"] is None
            dashboard = jane.get("/").text
            assert f'data-paused-action="{action_id}"' in dashboard
            assert f"ask {ADMIN}" in dashboard
            assert jane.get("/alerts").status_code == 403

        resumed = admin.post(
            f"/alerts/actions/{action_id}/resume", data={"csrf_token": form["csrf_token"]}
        )
        assert resumed.status_code == 303
        assert {k: app.sim.controls.scopes[k] for k in keys} == before
        assert _janes(admin.get("/api/actions").json()["actions"])[0]["state"] == "resumed"
        assert admin.get("/api/health").json()["actions"]["problem"] is None
        metrics = admin.get("/metrics").text
        assert 'usage_tracker_actions{state="resumed"} 1.0' in metrics
        assert 'usage_tracker_actions{state="proposed"} 1.0' in metrics  # Mei's
        with signed_in(app, JANE) as jane:
            assert "data-paused-action" not in jane.get("/").text

    store = Store.open(app.database_url)
    with store.transaction() as conn:
        steps = [(c["actor"], c["action"]) for c in audit.recent_changes(conn)]
    store.close()
    assert steps[:5] == [
        (ADMIN, "action.resumed"),
        (ADMIN, "action.resume"),
        (ADMIN, "action.done"),
        (ADMIN, "action.approved"),
        ("rule", "action.proposed"),
    ]
    assert httpx2.get(app.url + "/api/actions").status_code == 401


def test_the_actions_read_and_fit_at_1440_and_360_px(
    app: LiveApp,
    browser: Browser,  # noqa: F811
) -> None:
    """The Alerts page's actions (a done one with Resume) and a member's notice, at 1440 and
    360 px, dark and light (screenshots in test-artifacts/pages/)."""
    from .test_pages_browser import CONTRAST, _cut, _signed_in

    _replica_runs(app)  # the proposals, when this test runs alone
    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    for scheme in ("dark", "light"):
        for width in (1440, 360):
            where = f"{width} {scheme}"
            watched = _signed_in(browser, app, "admin", width, scheme)
            page = watched.page
            page.goto(app.url + "/alerts")
            assert page.locator("#actions-table tbody tr").count() == 2, where
            assert page.locator("#actions-table button", has_text="Approve").count() == 1
            assert page.evaluate(CONTRAST) == [], where
            assert _cut(page) == [], where
            page.screenshot(path=shots / f"actions-{width}-{scheme}.png", full_page=True)
            assert watched.errors == [], where
            page.context.close()

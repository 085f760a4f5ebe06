"""Budgets that act (issue 20): a spent budget proposes an action, an admin approves it, the
provider (the simulator, enforcing what it is told) stops the usage, and resume gives back
exactly what was there. Against the simulator served for real, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from usage_tracker import runtime, simulator
from usage_tracker.actions.engine import ActionEngine
from usage_tracker.alerts.engine import AlertEngine
from usage_tracker.people.names import KeyMappings
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.pools import load_pool_table
from usage_tracker.settings import Settings, load_settings
from usage_tracker.simulator.http import ApiError
from usage_tracker.simulator.openai.app import WRITE_KEY
from usage_tracker.simulator.openai.controls import initial_scopes
from usage_tracker.store import Store, schema
from usage_tracker.store import actions as rows
from usage_tracker.sync import sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW

HOUR = 3600
WINDOW = 6 * HOUR


@dataclass
class World:
    """The simulator on a clock the test moves, a synced store, and the engines over it."""

    sim: simulator.Simulator
    clock: list[int]
    url: str
    database_url: str
    workdir: Path

    def settings(self, rules: str, *, write: bool = True) -> Settings:
        path = self.workdir / "alerts.yaml"
        path.write_text(rules)
        return load_settings(
            database_url=self.database_url,
            openai_admin_key=ADMIN_KEY,
            openai_admin_write_key=WRITE_KEY if write else None,
            openai_base_url=self.url,
            alerts_file=path,
            key_mappings_file=self.workdir / "api_key_mappings.json",
            auth_mode="none",
        )

    def sync(self, store: Store) -> None:
        with AdminClient(ADMIN_KEY, self.url, retry=FAST_RETRY) as client:
            assert sync_once(store, client, now=self.clock[0]).errors == []

    def engines(self, settings: Settings, store: Store) -> tuple[AlertEngine, ActionEngine]:
        alert_rules, urls = runtime.alert_rules(settings)
        alerts = runtime.alert_engine(
            settings,
            store,
            rules=alert_rules,
            urls=urls,
            pools=load_pool_table(),
            mappings=KeyMappings(settings.key_mappings_file),
            clock=lambda: self.clock[0],
        )
        return alerts, runtime.action_engine(
            settings, store, lambda: alerts, clock=lambda: self.clock[0]
        )

    def usage(self, key_ids: set[str], start: int, end: int) -> int:
        """Input tokens of the keys in [start, end), as the simulator reports them now."""
        totals = self.sim.org.truth("completions", start, end, ("api_key_id",))
        return sum(v["input_tokens"] for k, v in totals.items() if k[0] in key_ids)

    def generated(self, key_ids: set[str], start: int, end: int) -> int:
        """The same, had nothing been stopped."""
        return sum(
            dict(e.metrics).get("input_tokens", 0)
            for e in self.sim.org.generated(start, end)
            if e.source == "completions" and e.dims[2] in key_ids
        )


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    clock = [NOW]
    sim = simulator.build(seed=7, days=40, clock=lambda: clock[0])
    with BackgroundServer(sim) as upstream:
        found = World(sim, clock, upstream.url + "/v1", database_url, tmp_path)
        store = Store.open(database_url)
        found.sync(store)
        store.close()
        yield found


def _busy_person(world: World) -> tuple[str, dict[str, str]]:
    """A person (a key owner's name) with usage in the windows before and after now and a
    restricted key among theirs, and their keys (id → project)."""
    org = world.sim.org
    people: dict[str, dict[str, str]] = {}
    restricted: set[str] = set()
    for i, k in enumerate(org.keys):
        if k.owner_type == "user" and k.active(NOW, org.projects):
            people.setdefault(k.owner_name, {})[k.id] = k.project_id
            if initial_scopes(i):
                restricted.add(k.owner_name)
    for name, keys in sorted(people.items()):
        ids = set(keys)
        busy = all(
            world.generated(ids, start, start + WINDOW) > 0
            for start in (NOW - WINDOW, NOW, NOW + WINDOW)
        )
        if busy and name in restricted:
            return name, keys
    raise AssertionError("the simulated organization has no busy person with a restricted key")


def _budget(person: str, mode: str = "propose") -> str:
    return (
        "limits: {enabled: false}\nspikes: []\npools: {enabled: false}\n"
        f"budgets:\n  - {{person: {person!r}, limit: 0.01, action: pause_keys, mode: {mode}}}\n"
    )


def _audit(store: Store) -> list[tuple[str, str]]:
    with store.transaction() as conn:
        table = schema.audit_log
        found = conn.execute(select(table.c.actor, table.c.action).order_by(table.c.id)).all()
    return [(str(a), str(b)) for a, b in found]


def _scopes(world: World, key_ids: Any) -> dict[str, list[str]]:
    return {k: world.sim.controls.scopes[k] for k in key_ids}


def test_a_spent_budget_is_proposed_approved_stops_the_usage_and_resume_restores_exactly(
    world: World,
) -> None:
    person, keys = _busy_person(world)
    before = _scopes(world, keys)
    assert any(before.values())
    assert ["api.all.read"] not in before.values()
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person)), store)

    assert actions.run() != []
    assert actions.run() == []  # once per rule, subject and period
    with store.transaction() as conn:
        (proposal,) = rows.listing(conn)
    assert proposal["state"] == rows.PROPOSED
    assert {t["key_id"] for t in proposal["targets"]} == set(keys)
    assert world.sim.writes == []  # nothing is written before an admin approves

    assert actions.decide(proposal["id"], actor="admin@example.com", approve=True)
    assert _scopes(world, keys) == {k: ["api.all.read"] for k in keys}
    paused_at = world.clock[0]
    world.clock[0] += WINDOW
    assert world.generated(set(keys), paused_at, paused_at + WINDOW) > 0
    assert world.usage(set(keys), paused_at, paused_at + WINDOW) == 0  # the usage stopped
    others = {k.id for k in world.sim.org.keys} - set(keys)
    assert world.usage(others, paused_at, paused_at + WINDOW) > 0

    assert actions.resume(proposal["id"], actor="admin@example.com")
    assert _scopes(world, keys) == before  # exactly as before, restricted scopes included
    resumed_at = world.clock[0]
    world.clock[0] += WINDOW
    assert world.usage(set(keys), resumed_at, resumed_at + WINDOW) == world.generated(
        set(keys), resumed_at, resumed_at + WINDOW
    )
    with store.transaction() as conn:
        done = rows.get(conn, proposal["id"])
    assert done is not None
    assert done["state"] == rows.RESUMED
    assert done["decided_by"] == done["resumed_by"] == "admin@example.com"
    assert _audit(store) == [
        ("rule", "action.proposed"),
        ("admin@example.com", "action.approved"),
        ("admin@example.com", "action.done"),
        ("admin@example.com", "action.resume"),
        ("admin@example.com", "action.resumed"),
    ]
    store.close()


def test_the_tracker_sees_the_usage_stop_after_the_next_sync(world: World) -> None:
    person, keys = _busy_person(world)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto")), store)
    actions.run()
    paused_at = world.clock[0]
    world.clock[0] += WINDOW
    world.sync(store)
    stored = store.usage_totals(paused_at - paused_at % HOUR + HOUR, world.clock[0], ["api_key_id"])
    assert stored
    assert not [r for r in stored if r["api_key_id"] in keys]
    store.close()


def test_mode_auto_acts_at_once_and_tells_what_was_done_and_how_to_undo_it(world: World) -> None:
    person, keys = _busy_person(world)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto")), store)
    (action_id,) = actions.run()
    assert _scopes(world, keys) == {k: ["api.all.read"] for k in keys}
    with store.transaction() as conn:
        action = rows.get(conn, action_id)
        notices = conn.execute(
            select(schema.alerts_sent.c.dedupe_key, schema.alerts_sent.c.message).where(
                schema.alerts_sent.c.kind == "action"
            )
        ).all()
    assert action is not None
    assert action["state"] == rows.DONE
    assert action["decided_by"] == "rule (mode: auto)"
    ((key, message),) = notices
    assert key == f"action:{action_id}:done"
    assert f"usage-tracker actions resume {action_id}" in message
    assert ("rule (mode: auto)", "action.done") in _audit(store)
    store.close()


def test_without_a_write_key_nothing_is_ever_written(world: World) -> None:
    person, keys = _busy_person(world)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto"), write=False), store)
    (planned,) = actions.plan()
    assert not planned.writable
    assert planned.blocked == "this connection has no write key"
    assert {t["key_id"] for t in planned.targets} == set(keys)
    assert actions.run() == []
    with store.transaction() as conn:
        assert rows.listing(conn) == []
    assert world.sim.writes == []
    store.close()


def test_two_replicas_act_once(world: World) -> None:
    person, keys = _busy_person(world)
    settings = world.settings(_budget(person, "auto"))
    stores = [Store.open(world.database_url) for _ in range(2)]
    engines = [world.engines(settings, s)[1] for s in stores]
    barrier = threading.Barrier(2)

    def replica(engine: ActionEngine) -> None:
        barrier.wait()
        engine.run()

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores[0].transaction() as conn:
        (action,) = rows.listing(conn)
    assert action["state"] == rows.DONE
    writes = [path for method, path, _ in world.sim.writes]
    assert sorted(writes) == sorted(
        f"/v1/organization/projects/{p}/api_keys/{k}" for k, p in keys.items()
    )
    for s in stores:
        s.close()


@pytest.mark.parametrize("status", [500, 403])
def test_a_failing_write_is_retried_with_backoff_shown_and_never_reported_done(
    world: World, status: int
) -> None:
    person, keys = _busy_person(world)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto")), store)
    world.sim.write_faults = [status] * 4
    (action_id,) = actions.run()
    with store.transaction() as conn:
        action = rows.get(conn, action_id)
    assert action is not None
    assert action["state"] == rows.APPROVED
    assert action["attempts"] == 1
    assert action["last_error"]
    assert action["next_attempt_at"] > world.clock[0]
    assert actions.health()["problem"]
    assert "retried" in actions.health()["problem"]
    actions.run()  # not due yet: nothing is tried
    assert world.sim.write_faults  # faults left: no attempt was made
    world.sim.write_faults = []
    world.clock[0] = action["next_attempt_at"]
    actions.run()
    with store.transaction() as conn:
        action = rows.get(conn, action_id)
    assert action is not None
    assert action["state"] == rows.DONE
    assert action["last_error"] is None
    assert _scopes(world, keys) == {k: ["api.all.read"] for k in keys}
    assert actions.health()["problem"] is None
    store.close()


def test_a_key_whose_scopes_cannot_be_read_is_left_alone_and_said_so(world: World) -> None:
    person, keys = _busy_person(world)
    unknown = sorted(keys)[0]
    world.sim.controls.unaudited.add(unknown)
    before = _scopes(world, keys)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto")), store)
    (action_id,) = actions.run()
    with store.transaction() as conn:
        action = rows.get(conn, action_id)
    assert action is not None
    assert action["state"] == rows.DONE
    assert unknown in (action["last_error"] or "")
    assert "audit log" in action["last_error"]
    assert world.sim.controls.scopes[unknown] == before[unknown]
    for k in set(keys) - {unknown}:
        assert world.sim.controls.scopes[k] == ["api.all.read"]
    actions.resume(action_id, actor="admin@example.com")
    assert _scopes(world, keys) == before
    store.close()


def _project_budget(project: str, limit: str) -> str:
    return (
        "limits: {enabled: false}\nspikes: []\npools: {enabled: false}\n"
        f"budgets:\n  - {{project: {project}, limit: {limit}, action: project_limit, "
        "mode: auto}\n"
    )


def test_project_limit_sets_the_hard_limit_the_provider_enforces_and_resume_restores_it(
    world: World,
) -> None:
    org = world.sim.org

    def ids(project: str) -> set[str]:
        return {k.id for k in org.keys if k.project_id == project}

    project = next(
        p
        for p in org.projects
        if world.generated(ids(p), NOW, NOW + WINDOW) > 0
        and world.generated(ids(p), NOW + WINDOW, NOW + 2 * WINDOW) > 0
    )
    previous = world.sim.limits.project_cents.get(project)  # as the organization was found
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_project_budget(project, "0.01")), store)
    (action_id,) = actions.run()
    with store.transaction() as conn:
        action = rows.get(conn, action_id)
    assert action is not None
    assert action["state"] == rows.DONE
    (target,) = action["targets"]
    assert world.sim.limits.spend_limit(org, project)["threshold_amount"] == target["cents"]
    assert action["previous"][project]["before"] == previous
    set_at = world.clock[0]
    world.clock[0] += WINDOW
    assert world.usage(ids(project), set_at, set_at + WINDOW) == 0  # spent: stopped at once

    actions.resume(action_id, actor="admin@example.com")
    assert org.stops.limit_now(project) == (True, previous)
    resumed_at = world.clock[0]
    world.clock[0] += WINDOW
    if previous is None:
        with pytest.raises(ApiError):
            world.sim.limits.spend_limit(org, project)
        assert world.usage(ids(project), resumed_at, resumed_at + WINDOW) > 0
    else:
        assert world.sim.limits.spend_limit(org, project)["threshold_amount"] == previous
    store.close()


def test_an_anthropic_key_is_set_inactive_its_usage_stops_and_resume_sets_it_back() -> None:
    from usage_tracker.providers.anthropic.writer import AnthropicWriter
    from usage_tracker.providers.errors import WriteRefusedError
    from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY, AnthropicSimulator
    from usage_tracker.simulator.anthropic.app import WRITE_KEY as ANTHROPIC_WRITE_KEY
    from usage_tracker.simulator.anthropic.org import key_id

    clock = [NOW]
    org = simulator.build(seed=7, days=40, clock=lambda: clock[0]).org
    sim = AnthropicSimulator(org)
    key = next(
        k
        for k in org.keys
        if k.active(NOW, org.projects)
        and sum(1 for e in org.generated(NOW, NOW + WINDOW) if e.dims[2] == k.id) > 3
    )
    ident = key_id(key.id)
    with (
        BackgroundServer(sim) as upstream,
        AnthropicWriter(DEFAULT_ADMIN_KEY, upstream.url, max_retries=0) as reader,
        AnthropicWriter(ANTHROPIC_WRITE_KEY, upstream.url, max_retries=0) as writer,
    ):
        with pytest.raises(WriteRefusedError):
            reader.pause_key("", ident)  # the read key may not write
        before = writer.key_state("", ident)
        assert before == {"status": "active"}
        writer.pause_key("", ident)
        assert writer.key_state("", ident) == {"status": "inactive"}
        clock[0] += WINDOW
        assert [e for e in org.events(NOW, clock[0]) if e.dims[2] == key.id] == []
        writer.restore_key("", ident, before)
        assert writer.key_state("", ident) == before
        clock[0] += WINDOW
        assert [e for e in org.events(NOW + WINDOW, clock[0]) if e.dims[2] == key.id]


def test_the_simulators_write_answers_are_the_pinned_sdks_types(world: World) -> None:
    """What the simulator answers to each write, and its audit log, validate as the openai
    SDK's own models (the requests are the SDK's: the writer makes them with it)."""
    from openai.types.admin.organization import AuditLogListResponse
    from openai.types.admin.organization.projects import (
        ProjectAPIKey,
        ProjectSpendLimit,
        ProjectSpendLimitDeleted,
    )

    key = world.sim.org.keys[1]
    base = world.url
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    with httpx2.Client(base_url=base, headers=headers) as http:
        updated = http.post(
            f"/organization/projects/{key.project_id}/api_keys/{key.id}",
            json={"scopes": ["api.all.read"]},
        )
        ProjectAPIKey.model_validate(updated.json(), strict=False)
        limit = http.post(
            f"/organization/projects/{key.project_id}/spend_limit",
            json={"currency": "USD", "interval": "month", "threshold_amount": 12_300},
        )
        assert ProjectSpendLimit.model_validate(limit.json()).threshold_amount == 12_300
        deleted = http.request("DELETE", f"/organization/projects/{key.project_id}/spend_limit")
        ProjectSpendLimitDeleted.model_validate(deleted.json())
        logs = http.get(
            "/organization/audit_logs",
            params={"resource_ids[]": key.id, "event_types[]": "api_key.updated"},
        ).json()
        (event,) = logs["data"]
        parsed = AuditLogListResponse.model_validate(event)
        assert parsed.api_key_updated is not None
        assert parsed.api_key_updated.changes_requested is not None
        assert parsed.api_key_updated.changes_requested.scopes == ["api.all.read"]
        refused = httpx2.post(
            f"{base}/organization/projects/{key.project_id}/spend_limit",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"currency": "USD", "interval": "month", "threshold_amount": 1},
        )
        assert refused.status_code == 403


def test_a_write_key_is_named_by_place_and_a_missing_one_is_said_with_its_line(
    tmp_path: Path,
) -> None:
    from usage_tracker.providers.connections import load_connections
    from usage_tracker.settings import SettingsError

    path = tmp_path / "connections.yaml"
    path.write_text(
        "connections:\n"
        "  - name: staging\n"
        "    provider: openai\n"
        "    key_env: STAGING_KEY\n"
        "    write_key_env: STAGING_WRITE_KEY\n"
    )
    settings = load_settings(connections_file=path)
    (found,) = load_connections(settings, {"STAGING_KEY": "sk-admin-x", "STAGING_WRITE_KEY": "w"})
    assert found.write_key is not None
    assert found.write_key.get_secret_value() == "w"
    assert "w" not in repr(found)
    with pytest.raises(SettingsError) as missing:
        load_connections(settings, {"STAGING_KEY": "sk-admin-x"})
    assert "line 5, column 20" in str(missing.value)
    assert "connections.0.write_key_env" in str(missing.value)
    assert "STAGING_WRITE_KEY is not set" in str(missing.value)
    (plain,) = load_connections(
        load_settings(openai_admin_key="sk-admin-x", openai_admin_write_key="sk-admin-w"), {}
    )
    assert plain.write_key is not None


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("{project: p, limit: 5, action: pause_keys}", "pause_keys needs a person or a key"),
        ("{person: A, limit: 5, action: project_limit}", "project_limit needs a project"),
        (
            "{project: p, limit: 5, unit: tokens, action: project_limit}",
            "project_limit needs a project, unit usd",
        ),
        ("{person: A, limit: 5, action: delete_keys}", "line 2"),
        ("{person: A, limit: 5, action: pause_keys, mode: later}", "line 2"),
    ],
)
def test_an_action_a_budget_cannot_take_is_refused_with_its_place(rule: str, says: str) -> None:
    from usage_tracker.alerts.rules import AlertRulesError, parse_rules

    with pytest.raises(AlertRulesError) as refused:
        parse_rules(f"budgets:\n  - {rule}\n", "alerts.yaml")
    assert says in str(refused.value)
    assert "alerts.yaml" in str(refused.value)


def test_actions_plan_prints_what_would_be_done_and_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """On the wall clock, as the command runs: the month's busiest person over a 1-token
    budget."""
    import os
    import subprocess
    import sys
    import time

    from usage_tracker.simulator.stops import month_start

    now = int(time.time())
    sim = simulator.build(seed=7, days=40, clock=lambda: now)
    used = sim.org.truth("completions", month_start(now), now, ("api_key_id",))
    owners = {k.id: k for k in sim.org.keys if k.owner_type == "user"}
    busiest = max(
        (v["input_tokens"], owners[k[0]].owner_name) for k, v in used.items() if k[0] in owners
    )
    person = busiest[1]
    keys = {k.id: k.project_id for k in owners.values() if k.owner_name == person}
    with BackgroundServer(sim) as upstream:
        url = upstream.url + "/v1"
        store = Store.open(database_url)
        with AdminClient(ADMIN_KEY, url, retry=FAST_RETRY) as client:
            assert sync_once(store, client, now=now).errors == []
        store.close()
        rules = tmp_path / "alerts.yaml"
        rules.write_text(_budget(person, "auto").replace("limit: 0.01", "limit: 1, unit: tokens"))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "OPENAI_ADMIN_KEY": ADMIN_KEY,
            "OPENAI_ADMIN_WRITE_KEY": WRITE_KEY,
            "OPENAI_BASE_URL": url,
            "ALERTS_FILE": str(rules),
            "KEY_MAPPINGS_FILE": str(tmp_path / "api_key_mappings.json"),
        }
        world = World(sim, [now], url, database_url, tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "usage_tracker", "actions", "plan"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"openai: pause the keys of person:{person}" in done.stdout
        assert "at once (mode: auto)" in done.stdout
        for key in keys:
            assert owners[key].name in done.stdout
        assert world.sim.writes == []
        store = Store.open(world.database_url)
        with store.transaction() as conn:
            assert rows.listing(conn) == []
        store.close()
        unknown = subprocess.run(
            [sys.executable, "-m", "usage_tracker", "actions", "resume", "999"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert unknown.returncode == 2
        assert "no action #999" in unknown.stderr


def test_the_write_key_is_in_no_log_row_or_answer(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    caplog.set_level(logging.DEBUG)
    person, _ = _busy_person(world)
    store = Store.open(world.database_url)
    _, actions = world.engines(world.settings(_budget(person, "auto")), store)
    world.sim.write_faults = [403, 500, 500]
    (action_id,) = actions.run()
    world.clock[0] += 3600
    world.sim.write_faults = []
    actions.run()
    actions.resume(action_id, actor="admin@example.com")
    with store.transaction() as conn:
        stored = [
            json.dumps([list(map(str, r)) for r in conn.execute(select(table)).all()])
            for table in (schema.actions, schema.audit_log, schema.alerts_sent)
        ]
    answers = json.dumps(actions.health())
    store.close()
    assert "refused the write (HTTP 403)" in caplog.text  # the failures were logged
    for text in (caplog.text, *stored, answers):
        assert WRITE_KEY not in text
        assert WRITE_KEY[-8:] not in text


def test_an_anthropic_keys_status_is_among_its_limits_and_shows_a_paused_key(
    tmp_path: Path,
) -> None:
    """Anthropic reports no spend limit to a Console organization, but each key's status: the
    limits read list every key that is not archived, and one set inactive shows as such."""
    from usage_tracker.providers.anthropic import AnthropicClient
    from usage_tracker.providers.anthropic.writer import AnthropicWriter
    from usage_tracker.reports import load_names
    from usage_tracker.reports.limits import limits
    from usage_tracker.simulator.anthropic import DEFAULT_ADMIN_KEY, AnthropicSimulator
    from usage_tracker.simulator.anthropic.app import WRITE_KEY as ANTHROPIC_WRITE_KEY
    from usage_tracker.simulator.anthropic.org import key_id
    from usage_tracker.sync import LIMITS_SECONDS, SyncWindow

    org = simulator.build(seed=7, days=10, clock=lambda: NOW).org
    sim = AnthropicSimulator(org)
    listed = {key_id(k.id) for k in org.keys if k.deleted_at is None}
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")
    with (
        BackgroundServer(sim) as upstream,
        AnthropicClient(DEFAULT_ADMIN_KEY, upstream.url, max_retries=0) as client,
        AnthropicWriter(ANTHROPIC_WRITE_KEY, upstream.url, max_retries=0) as writer,
    ):

        def sync(at: int) -> None:
            window = SyncWindow(backfill_days=2)
            sync_once(store, client, now=at, window=window, connection="anthropic")

        sync(NOW)
        report = limits(store, load_names(store), NOW)["limits"]
        assert {r["ident"] for r in report if r["kind"] == "key_status"} == listed
        assert not any(r["enforcing"] for r in report)
        paused = sorted(listed)[0]
        writer.pause_key("", paused)
        sync(NOW + LIMITS_SECONDS)
        report = limits(store, load_names(store), NOW)["limits"]
        assert {r["ident"] for r in report if r["enforcing"]} == {paused}
        (row,) = [r for r in report if r["ident"] == paused]
        assert row["subject"] == next(k.name for k in org.keys if key_id(k.id) == paused)
    store.close()

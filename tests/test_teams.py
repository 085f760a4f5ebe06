"""Teams (issue 21): the mapping file says who belongs to which team (a key's own, its person's,
its project's), and the team is a dimension and a filter: ``by.team`` in /api/summary, the
dashboard's Teams table, exports and ``report --by team``."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from usage_tracker.people.names import NO_TEAM, Names, Teams, parse_mappings
from usage_tracker.providers.openai.contract import SOURCES

from .conftest import LiveApp, latest, live_app

NOW = latest(18)


def test_the_original_mapping_file_still_names_keys_and_gives_no_team() -> None:
    found = parse_mappings('{"key_a": "Alice", "key_b": " "}', "m.json")
    assert dict(found.names) == {"key_a": "Alice"}
    assert found.teams == Teams()


def test_a_keys_team_is_its_own_else_its_persons_else_its_projects() -> None:
    found = parse_mappings(
        json.dumps(
            {
                "key_svc": {"name": "Build bot", "team": "Platform"},
                "key_jane": "Jane Smith",
                "people": {"Jane Smith": {"team": "Research"}, "Tom": "Sales"},
                "projects": {"proj_x": {"team": "Ops"}},
                "teams": {"Platform": {"cost_centre": "CC-4100"}},
            }
        ),
        "m.json",
    )
    keys = {
        "key_svc": {"project_id": "proj_x"},
        "key_jane": {"project_id": "proj_x"},
        "key_tom": {"project_id": "proj_y", "owner_name": "Tom"},
        "key_x": {"project_id": "proj_x", "owner_name": "Nobody"},
        "key_y": {"project_id": "proj_y", "owner_name": "Nobody"},
    }
    names = Names(keys=keys, users={}, projects={}, mapping=found.names, teams=found.teams)
    assert names.person("key_svc") == "Build bot"
    teams = {k: names.team(k) for k in keys}
    assert teams == {
        "key_svc": "Platform",  # its own, over its project's
        "key_jane": "Research",  # her person's, over the project's
        "key_tom": "Sales",
        "key_x": "Ops",  # the project's
        "key_y": NO_TEAM,
    }
    assert names.team("") == NO_TEAM
    assert names.cost_centre("Platform") == "CC-4100"
    assert names.cost_centre("Ops") is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "key_a": {"name": "A", "team": 3}\n}', "line 2, column 34"),
        ('{\n  "key_a": {"nme": "A"}\n}', "line 2, column 12"),
        ('{\n  "people": ["Jane"]\n}', "line 2, column 13"),
        ('{\n  "teams": {"T": {"cost_centre": 12}}\n}', "line 2, column 34"),
    ],
)
def test_a_wrong_entry_is_named_with_its_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=r"m\.json") as wrong:
        parse_mappings(text, "m.json")
    assert where in str(wrong.value)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("teams")
    # The simulator's people are the same whatever the seed's day: teams by person and project.
    (workdir / "api_key_mappings.json").write_text(
        json.dumps(
            {
                "people": {
                    "Jane Smith": {"team": "Research"},
                    "Mei Chen": {"team": "Research"},
                    "Arjun Patel": {"team": "Platform"},
                },
                "teams": {"Research": {"cost_centre": "CC-2200"}},
            }
        )
    )
    url = f"sqlite:///{workdir / 'teams.db'}"
    with live_app(url, workdir, now=NOW) as live:
        yield live


def test_by_team_adds_each_keys_usage_and_cost_to_its_team(app: LiveApp) -> None:
    start, end = NOW - NOW % 86400 - 6 * 86400, NOW - NOW % 3600
    query = f"?start_time={start}&end_time={end}"
    served = httpx2.get(app.url + "/api/summary" + query).json()
    by_team = {r["team"]: r for r in served["by"]["team"]}
    owners = {k.id: k.owner_name for k in app.org.keys}
    team_of = {"Jane Smith": "Research", "Mei Chen": "Research", "Arjun Patel": "Platform"}
    expected: dict[str, int] = defaultdict(int)
    for source, spec in SOURCES.items():
        if "input_tokens" not in spec.metrics or "api_key_id" not in spec.group_by:
            continue
        for (key,), figures in app.org.truth(source, start, end, ("api_key_id",)).items():
            expected[team_of.get(owners.get(key, ""), NO_TEAM)] += figures["input_tokens"]
    assert {t: r["input_tokens"] for t, r in by_team.items() if r["input_tokens"]} == {
        t: v for t, v in expected.items() if v
    }
    assert by_team["Research"]["cost_centre"] == "CC-2200"
    assert by_team["Platform"]["cost_centre"] is None
    billed = sum((Decimal(str(r["billed_cost"] or 0)) for r in by_team.values()), Decimal(0))
    assert billed == Decimal(str(served["billed_usd"]))  # every billed cent is in one team

    research = httpx2.get(app.url + "/api/summary" + query + "&team=Research").json()
    assert research["totals"]["input_tokens"] == by_team["Research"]["input_tokens"]
    assert Decimal(str(research["billed_usd"])) == Decimal(str(by_team["Research"]["billed_cost"]))
    unknown = httpx2.get(app.url + "/api/summary" + query + "&team=Nobody")
    assert unknown.status_code == 404
    assert "Platform, Research" in unknown.json()["error"]["message"]


def test_the_dashboard_has_a_teams_table_and_exports_by_team(app: LiveApp) -> None:
    page = httpx2.get(app.url + "/?range=7d").text
    assert 'id="table-team"' in page
    assert "CC-2200" in page
    assert "stack=team" in page
    narrowed = httpx2.get(app.url + "/?range=7d&team=Research&stack=team")
    assert narrowed.status_code == 200
    # Stacked by team with nothing narrowed: bars by the hour, the day and the week.
    today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
    months = f"custom&start={today - dt.timedelta(days=120)}&end={today}"
    for shown in ("today", "7d", months):
        by_team = httpx2.get(app.url + f"/?range={shown}&stack=team")
        assert by_team.status_code == 200, shown
        legend = by_team.text.split('class="legend"', 1)[1].split("</ul>", 1)[0]
        assert 'title="Research"' in legend, shown
    csv = httpx2.get(app.url + "/api/export?by=team&format=csv").text
    header, *rows = csv.strip().splitlines()
    assert header.startswith("team,cost centre,")
    assert any(r.startswith("Research,CC-2200,") for r in rows)


def test_report_by_team_on_the_command_line(app: LiveApp, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    since = dt.datetime.fromtimestamp(NOW, dt.UTC).date().isoformat()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "usage_tracker",
            "report",
            "--since",
            since,
            "--until",
            since,
            "--by",
            "team",
            "--format",
            "csv",
        ],
        env={
            **os.environ,
            "DATABASE_URL": app.database_url,
            "KEY_MAPPINGS_FILE": str(app.workdir / "api_key_mappings.json"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("team,cost centre,")
    assert "Research,CC-2200" in done.stdout


# -- a lead sees their team's keys, and nothing else, on every route -------------------------

LEAD = "lead@example.com"
RESEARCH = {"Jane Smith", "Mei Chen"}


@pytest.fixture(scope="module")
def led(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    from usage_tracker.people.access import hash_password
    from usage_tracker.store import Store
    from usage_tracker.store import accounts as rows

    from .test_auth import PASSWORD

    workdir = tmp_path_factory.mktemp("led")
    (workdir / "api_key_mappings.json").write_text(
        json.dumps({"people": {p: {"team": "Research"} for p in RESEARCH}})
    )
    url = f"sqlite:///{workdir / 'led.db'}"
    store = Store.open(url)
    with store.transaction() as conn:
        rows.save_account(
            conn,
            LEAD,
            role="lead",
            name=None,
            password_hash=hash_password(PASSWORD),
            now=0,
            team="Research",
        )
    store.close()
    with live_app(url, workdir, now=NOW, auth_mode="password") as live:
        yield live


def _team_keys(app: LiveApp) -> set[str]:
    return {k.id for k in app.org.keys if k.owner_name in RESEARCH}


def test_a_lead_sees_exactly_their_teams_keys_on_every_route(led: LiveApp) -> None:
    """The member-isolation test's form: every usage source, grouping and range of /api/usage
    equals the truth of the team's keys; the summary, tiers, exports, the dashboard and the
    People page hold no one else; the organization's pages are refused."""
    import itertools

    from .test_auth import signed_in

    keys = _team_keys(led)
    assert len(keys) == 4
    today = led.now - led.now % 86400
    ranges = [(today, led.now - led.now % 3600), (today - 7 * 86400, today)]
    tried = 0
    with signed_in(led, LEAD) as lead:
        for source, (start, end) in itertools.product(SOURCES, ranges):
            spec = SOURCES[source]
            if "api_key_id" not in spec.group_by:
                continue
            for groups in [(), ("api_key_id",), ("model",)]:
                if not set(groups) <= set(spec.group_by):
                    continue
                params: list[tuple[str, object]] = [
                    ("source", source),
                    ("start_time", start),
                    ("end_time", end),
                    ("bucket_width", "1d"),
                    ("limit", 31),
                    *[("group_by", g) for g in groups],
                ]
                body = lead.get("/api/usage", params=params).json()  # type: ignore[arg-type]
                got: dict[tuple[object, ...], int] = defaultdict(int)
                for bucket in body["data"]:
                    for r in bucket["results"]:
                        assert r.get("api_key_id") in (None, *keys)
                        got[tuple(r[g] for g in groups)] += r.get("num_model_requests", 0) or 0
                truth: dict[tuple[object, ...], int] = defaultdict(int)
                dims = list(dict.fromkeys([*groups, "api_key_id"]))
                for key, figures in led.org.truth(source, start, end, dims).items():
                    values = dict(zip(dims, key, strict=True))
                    if values["api_key_id"] in keys:
                        truth[tuple(values[g] for g in groups)] += figures.get(
                            "num_model_requests", 0
                        )
                assert {k: v for k, v in got.items() if v} == {
                    k: v for k, v in truth.items() if v
                }, (source, groups)
                tried += 1
        summary = lead.get("/api/summary", params={"start_time": ranges[1][0]}).json()
        assert {r["person"] for r in summary["by"]["person"]} <= RESEARCH
        assert {r["api_key"] for r in summary["by"]["api_key"]} <= keys
        assert {r["team"] for r in summary["by"]["team"]} <= {"Research"}
        page = lead.get("/", params={"range": "7d"}).text
        people = lead.get("/people").text
        export = lead.get("/api/export", params={"by": "person", "start_time": ranges[1][0]}).text
        for other in ("Arjun Patel", "Fatima Al-Sayed", "Lucas Oliveira", "ingest-service"):
            assert other not in page
            assert other not in people
            assert other not in export
        assert "Jane Smith" in page
        assert "Mei Chen" in page
        tiers = lead.get("/api/tiers").json()
        for pool in tiers["pools"].values():
            named = {c["name"] for c in pool["top_consumers"]}
            assert named <= {*RESEARCH, "everyone else"}
        for refused in ("/limits", "/statements", "/api/statement", "/api/limits", "/alerts"):
            assert lead.get(refused).status_code == 403, refused
        assert lead.get("/api/actions").json()["write_keys"] is None
    assert tried >= 20


def test_a_team_budget_counts_its_keys_and_goes_to_the_teams_channel(app: LiveApp) -> None:
    from usage_tracker.alerts.evaluate import Inputs, budget_alerts
    from usage_tracker.alerts.rules import parse_rules
    from usage_tracker.people.names import KeyMappings
    from usage_tracker.providers.openai.pools import load_pool_table
    from usage_tracker.reports import load_names, summary
    from usage_tracker.reports.forecast import month_bounds
    from usage_tracker.store import Store

    rules = parse_rules(
        "budgets:\n  - {team: Research, limit: 0.01, channels: ['json://127.0.0.1:9/research']}\n",
        "alerts.yaml",
    )
    (rule,) = rules.budgets
    store = Store.open(app.database_url)
    names = load_names(store, KeyMappings(app.workdir / "api_key_mappings.json").current())
    inputs = Inputs(
        store=store,
        names=names,
        pools=load_pool_table(),
        usage_tier="1-2",
        sharing_projects=(),
        base_url="http://tracker",
    )
    fired = list(budget_alerts(rule, inputs, NOW))
    start, _ = month_bounds(NOW)
    team_keys = [k for k in names.keys if names.team(k) == "Research"]
    billed = summary(store, names, start, NOW - NOW % 3600 + 3600, where={"api_key_id": team_keys})
    store.close()
    assert fired
    assert {f.channels for f in fired} == {("json://127.0.0.1:9/research",)}
    assert Decimal(fired[0].payload["used"]) == billed["billed_usd"]
    assert "team=Research" in fired[0].payload["url"]
    assert fired[0].title.startswith("Budget")
    assert "team Research" in fired[0].title


def test_metrics_carry_a_series_per_team(app: LiveApp) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    served = httpx2.get(app.url + "/api/summary").json()["by"]["team"]
    metrics = httpx2.get(app.url + "/metrics").text
    tokens = {
        s.labels["id"]: s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "usage_tracker_tokens"
        and s.labels.get("group") == "team"
        and s.labels.get("window") == "day"
    }
    assert tokens == {r["team"]: float(r["tokens"]) for r in served}
    assert "Research" in tokens


def test_an_admin_puts_a_person_in_a_team_on_the_people_page(tmp_path: Path) -> None:
    """Over the mapping file's team, audited; a viewer may not; empty gives the file's back."""
    from usage_tracker.store import Store

    from .test_auth import ADMIN, VIEWER, _add_account, _form_values, signed_in

    (tmp_path / "api_key_mappings.json").write_text(
        json.dumps({"people": {"Arjun Patel": {"team": "Platform"}}})
    )
    url = f"sqlite:///{tmp_path / 'page.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    _add_account(url, VIEWER, "viewer")
    with live_app(url, tmp_path, now=NOW, auth_mode="password") as live:
        with signed_in(live, VIEWER) as viewer:
            form = _form_values(viewer.get("/people").text)
            refused = viewer.post(
                "/people/team",
                data={"person": "Arjun Patel", "team": "Sales", "csrf_token": form["csrf_token"]},
            )
            assert refused.status_code == 403
        with signed_in(live, ADMIN) as admin:
            form = _form_values(admin.get("/people").text)

            def put(team: str) -> set[str]:
                done = admin.post(
                    "/people/team",
                    data={"person": "Arjun Patel", "team": team, "csrf_token": form["csrf_token"]},
                )
                assert done.status_code == 303
                teams = admin.get("/api/summary?start_time=0").json()["by"]["team"]
                return {r["team"] for r in teams if r["tokens"]}

            assert put("Sales") == {"Sales", NO_TEAM}  # the page over the mapping file
            assert "Sales" in admin.get("/people").text
            assert put("") == {"Platform", NO_TEAM}  # the file's again
            nobody = admin.post(
                "/people/team",
                data={"person": "Nobody", "team": "X", "csrf_token": form["csrf_token"]},
            )
            assert nobody.status_code == 400
            changes = admin.get("/people").text
    assert "team: &#39;Arjun Patel&#39; in team &#39;Sales&#39;" in changes

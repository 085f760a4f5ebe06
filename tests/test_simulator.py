"""The simulator serves OpenAI's contract exactly: shapes, paging, grouping, filters and errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from jsonschema import ValidationError

from usage_tracker import simulator
from usage_tracker.providers.openai.contract import (
    COSTS_GROUP_BY,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SOURCES,
    WIDTH_SECONDS,
)
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, NOW, SPEC
from .spec_validation import validate

DAY = 86400


@contextmanager
def served(sim: simulator.Simulator, key: str | None = ADMIN_KEY) -> Iterator[httpx2.Client]:
    """An HTTP client for ``sim`` served for real on a loopback port."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with (
        BackgroundServer(sim) as server,
        httpx2.Client(base_url=server.url + "/v1", headers=headers) as client,
    ):
        yield client


@pytest.fixture
def http(sim: simulator.Simulator) -> Iterator[httpx2.Client]:
    with served(sim) as client:
        yield client


def _get(http: httpx2.Client, path: str, params: Any, status: int = 200) -> Any:
    response = http.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()


def _subsets(items: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for n in range(len(items) + 1):
        yield from itertools.combinations(items, n)


def _cases() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    for name, source in sorted(SOURCES.items()):
        for width in ("1m", "1h", "1d"):
            for group in _subsets(source.group_by):
                yield name, width, group


def test_every_source_width_and_grouping_validates_against_the_spec(http: httpx2.Client) -> None:
    checked = 0
    for name, width, group in _cases():
        step = WIDTH_SECONDS[width]
        start = NOW - NOW % DAY - DAY - 8 * 3600  # busy hours, two days ago
        page = _get(
            http,
            f"/organization/usage/{name}",
            [
                ("start_time", start),
                ("bucket_width", width),
                ("limit", 2),
                *(("group_by", g) for g in group),
            ],
        )
        validate(SPEC, page, "UsageResponse")
        assert [b["start_time"] for b in page["data"]] == [start, start + step]
        for result in (r for b in page["data"] for r in b["results"]):
            assert result["object"] == SOURCES[name].object
            for dim in SOURCES[name].group_by:
                # A grouped dimension may still be null: a service account's usage has no user.
                assert dim in group or result[dim] is None, (name, group, dim)
                assert dim not in group or result[dim] is not None or dim == "user_id"
        checked += 1
    assert checked == sum(3 * 2 ** len(s.group_by) for s in SOURCES.values())


@pytest.mark.parametrize("width", ["1m", "1h", "1d"])
def test_limit_defaults_by_bucket_width(http: httpx2.Client, width: str) -> None:
    start = NOW - NOW % DAY - 10 * DAY
    page = _get(
        http, "/organization/usage/moderations", {"start_time": start, "bucket_width": width}
    )
    assert len(page["data"]) == DEFAULT_LIMIT[width]
    assert page["has_more"] is True


def test_costs_validate_for_every_grouping(http: httpx2.Client) -> None:
    for group in _subsets(COSTS_GROUP_BY):
        page = _get(
            http,
            "/organization/costs",
            [("start_time", NOW - 10 * DAY), ("limit", 10), *(("group_by[]", g) for g in group)],
        )
        validate(SPEC, page, "UsageResponse")
        results = [r for b in page["data"] for r in b["results"]]
        assert results
        for result in results:
            assert (result["quantity"] is None) == ("line_item" not in group)


def test_lists_validate_against_the_spec(http: httpx2.Client, sim: simulator.Simulator) -> None:
    projects = _get(http, "/organization/projects", {"include_archived": "true"})
    validate(SPEC, projects, "ProjectListResponse")
    validate(SPEC, _get(http, "/organization/users", {}), "UserListResponse")
    for project in projects["data"]:
        keys = _get(
            http,
            f"/organization/projects/{project['id']}/api_keys",
            {"owner_project_access": "any"},
        )
        validate(SPEC, keys, "ProjectApiKeyListResponse")
        for key in keys["data"]:
            one = _get(http, f"/organization/projects/{project['id']}/api_keys/{key['id']}", {})
            validate(SPEC, one, "ProjectApiKey")
    user = sim.org.users[0]
    validate(SPEC, _get(http, f"/organization/users/{user.id}", {}), "User")


def test_the_validator_rejects_a_result_of_the_wrong_shape() -> None:
    bad = {
        "object": "page",
        "has_more": False,
        "next_page": None,
        "data": [
            {"object": "bucket", "start_time": 0, "end_time": 1, "results": [{"object": "x"}]}
        ],
    }
    with pytest.raises(ValidationError):
        validate(SPEC, bad, "UsageResponse")


def test_both_group_by_forms_give_the_same_answer(http: httpx2.Client) -> None:
    base = [("start_time", NOW - 2 * DAY), ("bucket_width", "1h"), ("limit", 48)]
    repeated = _get(
        http,
        "/organization/usage/completions",
        [*base, ("group_by", "model"), ("group_by", "api_key_id")],
    )
    brackets = _get(
        http,
        "/organization/usage/completions",
        [*base, ("group_by[]", "model"), ("group_by[]", "api_key_id")],
    )
    assert repeated == brackets
    assert any(b["results"] for b in repeated["data"])


def test_buckets_start_at_start_time_and_end_time_is_exclusive(http: httpx2.Client) -> None:
    start = NOW - 5 * DAY - 1234  # deliberately not on a boundary
    page = _get(
        http,
        "/organization/usage/embeddings",
        {"start_time": start, "end_time": start + 3 * 3600, "bucket_width": "1h"},
    )
    assert [b["start_time"] for b in page["data"]] == [start, start + 3600, start + 7200]
    assert page["data"][-1]["end_time"] == start + 3 * 3600
    assert page["has_more"] is False
    assert page["next_page"] is None


def test_empty_buckets_have_empty_results(http: httpx2.Client, sim: simulator.Simulator) -> None:
    before_history = sim.org.start - 10 * DAY
    page = _get(http, "/organization/usage/completions", {"start_time": before_history, "limit": 3})
    assert [b["results"] for b in page["data"]] == [[], [], []]


@pytest.mark.parametrize("width", ["1m", "1h", "1d"])
def test_paging_follows_opaque_cursors_to_the_end(
    http: httpx2.Client, sim: simulator.Simulator, width: str
) -> None:
    step = WIDTH_SECONDS[width]
    buckets = {"1m": 3000, "1h": 400, "1d": 70}[width]
    end = NOW - NOW % step
    start = end - buckets * step
    params: dict[str, Any] = {
        "start_time": start,
        "end_time": end,
        "bucket_width": width,
        "limit": MAX_LIMIT[width],
    }
    seen, requests, total = [], 0, 0
    while True:
        page = _get(http, "/organization/usage/completions", params)
        requests += 1
        seen += [b["start_time"] for b in page["data"]]
        total += sum(r["input_tokens"] for b in page["data"] for r in b["results"])
        if not page["has_more"]:
            break
        assert str(page["next_page"]).startswith("page_")
        assert str(start) not in page["next_page"]
        params["page"] = page["next_page"]
    assert seen == list(range(start, end, step))
    assert requests == -(-buckets // MAX_LIMIT[width])
    assert total == sim.org.truth("completions", start, end)[()]["input_tokens"]


def test_data_stops_at_now_with_today_partial(
    http: httpx2.Client, sim: simulator.Simulator
) -> None:
    today = NOW - NOW % DAY
    page = _get(
        http, "/organization/usage/completions", {"start_time": today - DAY, "bucket_width": "1d"}
    )
    assert [b["start_time"] for b in page["data"]] == [today - DAY, today]
    hours = _get(
        http,
        "/organization/usage/completions",
        {"start_time": today, "bucket_width": "1h", "limit": 24},
    )
    assert len(hours["data"]) == (NOW - today) // 3600 + 1
    assert (
        page["data"][1]["results"][0]["input_tokens"]
        == sim.org.truth("completions", today, NOW)[()]["input_tokens"]
    )


def test_filters_restrict_results(http: httpx2.Client, sim: simulator.Simulator) -> None:
    key = sim.org.keys[0]
    params = [
        ("start_time", NOW - 7 * DAY),
        ("group_by", "api_key_id"),
        ("group_by", "batch"),
        ("api_key_ids[]", key.id),
        ("batch", "false"),
    ]
    page = _get(http, "/organization/usage/completions", params)
    results = [r for b in page["data"] for r in b["results"]]
    assert results
    assert {r["api_key_id"] for r in results} == {key.id}
    assert {r["batch"] for r in results} == {False}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": NOW, "end_time": NOW - 10}, "end_time"),
        ({"start_time": NOW, "bucket_width": "2h"}, "bucket_width"),
        ({"start_time": NOW, "bucket_width": "1h", "limit": 169}, "limit"),
        ({"start_time": NOW, "bucket_width": "1d", "limit": 0}, "limit"),
        ({"start_time": NOW, "group_by": "size"}, "group_by"),
        ({"start_time": NOW, "batch": "maybe"}, "batch"),
        ({"start_time": NOW, "page": "page_bm90LWEtY3Vyc29y"}, "page"),
    ],
)
def test_invalid_parameters_get_openais_400(
    http: httpx2.Client, params: dict[str, Any], param: str
) -> None:
    body = _get(http, "/organization/usage/completions", params, status=400)
    validate(SPEC, body, "ErrorResponse")
    assert body["error"]["param"] == param


def test_costs_reject_other_widths_and_large_limits(http: httpx2.Client) -> None:
    assert (
        _get(http, "/organization/costs", {"start_time": NOW, "bucket_width": "1h"}, 400)["error"][
            "param"
        ]
        == "bucket_width"
    )
    assert (
        _get(http, "/organization/costs", {"start_time": NOW, "limit": 181}, 400)["error"]["param"]
        == "limit"
    )
    assert (
        len(
            _get(http, "/organization/costs", {"start_time": NOW - 200 * DAY, "limit": 180})["data"]
        )
        == 180
    )


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("sk-admin-wrong-0123456789abcdef", 401, "invalid_api_key"),
        ("sk-admin-revoked-simulator", 401, "invalid_api_key"),
        ("", 401, None),
    ],
)
def test_bad_keys_get_openais_401(
    sim: simulator.Simulator, key: str, status: int, code: str | None
) -> None:
    with served(sim, key) as http:
        response = http.get("/organization/usage/completions", params={"start_time": NOW})
    assert response.status_code == status
    validate(SPEC, response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(("style", "status"), [("2026", 403), ("2025", 401)])
def test_a_project_key_gets_the_missing_scope_error(style: str, status: int) -> None:
    sim = simulator.build(seed=1, days=2, clock=lambda: NOW, scope_error_style=style)
    with served(sim, "sk-proj-abcdefghijklmnop") as http:
        response = http.get("/organization/costs", params={"start_time": NOW})
    assert response.status_code == status
    error = response.json()["error"]
    message = error if style == "2026" else error["message"]
    assert "Missing scopes: api.usage.read" in message


def test_the_organization_looks_like_a_real_one(sim: simulator.Simulator) -> None:
    org = sim.org
    models = {e.dims[3] for e in org.events(org.start, NOW) if e.dims[3]}
    assert len(models) >= 15
    assert any(m.startswith("ft:") for m in models)
    assert any(m.endswith("-pro") for m in models)
    assert {"text-embedding-3-small", "tts-1", "gpt-realtime"} <= models
    assert any(p.archived_at for p in org.projects.values())
    assert {k.owner_type for k in org.keys} == {"user", "service_account"}
    deleted = [k for k in org.keys if k.deleted_at]
    assert deleted
    assert org.truth("completions", org.start, NOW, ["api_key_id"]).get((deleted[0].id,))
    tiers = {e.dims[5] for e in org.events(NOW - 7 * DAY, NOW) if e.source == "completions"}
    assert "incentivized-tier" in tiers
    assert "default" in tiers
    batches = {e.dims[4] for e in org.events(NOW - 7 * DAY, NOW) if e.source == "completions"}
    assert batches == {True, False}


def test_traffic_has_a_daily_and_weekly_rhythm(sim: simulator.Simulator) -> None:
    hourly = sim.org.truth("completions", sim.org.start, NOW - NOW % DAY, bucket_width="1h")
    by_hour = [0] * 24
    by_weekday = [0] * 7
    for (ts,), row in hourly.items():
        by_hour[(ts % DAY) // 3600] += row["num_model_requests"]
        by_weekday[(ts // DAY + 3) % 7] += row["num_model_requests"]
    assert max(by_hour) > 3 * min(by_hour)
    assert min(by_weekday[:5]) > 2 * max(by_weekday[5:])


def test_the_same_seed_gives_the_same_organization() -> None:
    a = simulator.build(seed=5, days=30, clock=lambda: NOW).org
    b = simulator.build(seed=5, days=10, clock=lambda: NOW + 7200).org
    assert [k.id for k in a.keys] == [k.id for k in b.keys]
    window = (NOW - 2 * DAY, NOW)
    assert a.truth("completions", *window, ["model"]) == b.truth("completions", *window, ["model"])
    c = simulator.build(seed=6, days=30, clock=lambda: NOW).org
    assert c.truth("completions", *window) != a.truth("completions", *window)


def test_late_data_is_revised_upward() -> None:
    sim = simulator.build(seed=7, days=3, clock=lambda: NOW, late_hours=3)
    with served(sim) as client:
        params = {"start_time": NOW - NOW % 3600 - 6 * 3600, "bucket_width": "1h", "limit": 7}
        first = _get(client, "/organization/usage/completions", params)
        sim.org.revise()
        sim.org.revise()
        second = _get(client, "/organization/usage/completions", params)
    tokens = [
        [sum(r["input_tokens"] for r in b["results"]) for b in p["data"]] for p in (first, second)
    ]
    assert tokens[0][:3] == tokens[1][:3]  # older hours are final
    assert sum(tokens[1][3:]) > sum(tokens[0][3:])  # the last hours grew
    assert (
        sum(tokens[1])
        == sim.org.truth("completions", params["start_time"], NOW)[()]["input_tokens"]
    )


def test_a_benchmark_organization_has_the_size_asked_for() -> None:
    size = simulator.Size(keys=40, users=12, projects=4, models=20, rows_per_hour=25)
    org = simulator.build(seed=3, days=30, clock=lambda: NOW, size=size).org
    assert len(org.keys) == 40
    assert len(org.users) == 12
    assert len(org.projects) == 4
    used = {m for k in org.keys for m in k.models}
    assert len(used) <= 20
    assert any(m.endswith(tuple(f"-2026-01-{d:02d}" for d in range(1, 29))) for m in used)
    week = NOW - NOW % 86400 - 7 * 86400
    rows = {
        (e.ts - e.ts % 3600, e.dims)
        for e in org.events(week, week + 7 * 86400)
        if e.source == "completions"
    }
    assert 20 <= len(rows) / (7 * 24) <= 30  # about 25 an hour, over a week's rhythm

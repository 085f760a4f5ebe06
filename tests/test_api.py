"""The JSON API, served for real from a synced database, against the simulator's truth."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from usage_tracker.providers.openai.contract import SOURCES, WIDTH_SECONDS
from usage_tracker.providers.openai.pools import load_pool_table

from .conftest import ADMIN_KEY, LiveApp, fresh_database, live_app, serve_process

DAY, HOUR = 86400, 3600


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("app")
    with fresh_database(request, request.param, workdir) as url, live_app(url, workdir) as live:
        yield live


@pytest.fixture
def http(app: LiveApp) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        yield client


def _all_pages(http: httpx2.Client, params: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    buckets, page = [], None
    while True:
        response = http.get("/api/usage", params=[*params, *([("page", page)] if page else [])])
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"object", "data", "has_more", "next_page"}
        assert body["object"] == "page"
        buckets += body["data"]
        if not body["has_more"]:
            return buckets
        page = body["next_page"]


def _subsets(items: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for n in range(len(items) + 1):
        yield from itertools.combinations(items, n)


def _check_against_truth(
    app: LiveApp,
    http: httpx2.Client,
    source: str,
    width: str,
    group: tuple[str, ...],
    start: int,
    end: int,
) -> None:
    params: list[tuple[str, Any]] = [
        ("start_time", start),
        ("end_time", end),
        ("bucket_width", width),
        ("source", source),
    ]
    params += [("group_by", g) for g in group] or [("group_by", "none")]
    buckets = _all_pages(http, params)
    step = WIDTH_SECONDS[width]
    assert [b["start_time"] for b in buckets] == list(
        range(start, min(end, app.now - app.now % step + step), step)
    )
    spec = SOURCES[source]
    got = {}
    for bucket in buckets:
        for result in bucket["results"]:
            assert result["object"] == spec.object
            assert "name" in result
            got[(bucket["start_time"], *(result[g] for g in group))] = {
                m: result[m] for m in spec.metrics
            }
    truth = {
        k: v
        for k, v in app.org.truth(source, start, end, group, bucket_width=width).items()
        if any(v.values())
    }
    assert got == truth, (source, width, group)


@pytest.mark.parametrize("width", ["1h", "1d"])
def test_usage_for_every_completions_grouping_equals_the_truth(
    app: LiveApp, http: httpx2.Client, width: str
) -> None:
    end = app.now - app.now % DAY + DAY
    start = end - (9 * DAY if width == "1d" else 2 * DAY)
    for group in _subsets(SOURCES["completions"].group_by):
        _check_against_truth(app, http, "completions", width, group, start, end)


@pytest.mark.parametrize("source", sorted(set(SOURCES) - {"completions"}))
def test_usage_of_every_other_source_equals_the_truth(
    app: LiveApp, http: httpx2.Client, source: str
) -> None:
    end = app.now - app.now % HOUR + HOUR
    for width, span in (("1h", 8 * DAY), ("1d", 40 * DAY)):
        start = end - span - (end - span) % WIDTH_SECONDS[width]
        for group in (SOURCES[source].group_by, ()):
            _check_against_truth(app, http, source, width, group, start, end)


def test_usage_pages_follow_the_upstream_limits(http: httpx2.Client, app: LiveApp) -> None:
    start = app.now - app.now % HOUR - 10 * DAY
    first = http.get("/api/usage", params={"start_time": start, "bucket_width": "1h"}).json()
    assert len(first["data"]) == 24
    assert first["has_more"]
    assert first["next_page"].startswith("page_")
    bigger = http.get(
        "/api/usage", params={"start_time": start, "bucket_width": "1h", "limit": 168}
    ).json()
    assert len(bigger["data"]) == 168


def test_names_are_added_to_each_result(http: httpx2.Client, app: LiveApp, tmp_path: Path) -> None:
    start = app.now - app.now % DAY - 7 * DAY
    body = http.get(
        "/api/usage",
        params=[("start_time", start), ("group_by", "api_key_id"), ("group_by", "model")],
    ).json()
    people = {r["api_key_id"]: r["name"] for b in body["data"] for r in b["results"]}
    jane = next(k for k in app.org.keys if k.name == "jane-laptop")
    assert people[jane.id] == "Jane Smith"
    users = http.get("/api/usage", params={"start_time": start, "group_by[]": "user_id"}).json()
    named = {r["name"] for b in users["data"] for r in b["results"] if r["user_id"]}
    assert "Mei Chen" in named


def test_minute_buckets_go_upstream_once_for_identical_requests(
    http: httpx2.Client, app: LiveApp
) -> None:
    start = app.now - app.now % 60 - 30 * 60
    params = {"start_time": start, "bucket_width": "1m", "limit": 30, "group_by": "model"}
    before = app.sim.requests["completions"]
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        with httpx2.Client(base_url=app.url, timeout=30) as client:
            answers.append(client.get("/api/usage", params=params).json())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert app.sim.requests["completions"] - before == 1
    assert all(a == answers[0] for a in answers)
    got = {
        (b["start_time"], r["model"]): r["input_tokens"]
        for b in answers[0]["data"]
        for r in b["results"]
    }
    truth = app.org.truth("completions", start, start + 30 * 60, ["model"], bucket_width="1m")
    assert got == {k: v["input_tokens"] for k, v in truth.items()}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "soon"}, "start_time"),
        ({"start_time": 3600, "bucket_width": "2h"}, "bucket_width"),
        ({"start_time": 3600, "group_by": "colour"}, "group_by"),
        ({"start_time": 3600, "source": "images", "group_by": "batch"}, "group_by"),
        ({"start_time": 3600, "bucket_width": "1h", "limit": 169}, "limit"),
        ({"start_time": 9223372036854771200, "bucket_width": "1h"}, "start_time"),
        ({"start_time": 3600, "end_time": 9223372036854771200}, "end_time"),
        ({"start_time": 7200, "end_time": 3600}, "end_time"),
        ({"start_time": 3600, "source": "everything"}, "source"),
        ({"start_time": 3600, "page": "page_bm9wZQ=="}, "page"),
    ],
)
def test_bad_parameters_get_a_400_saying_which_and_why(
    http: httpx2.Client, params: dict[str, Any], param: str
) -> None:
    response = http.get("/api/usage", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert param in error["message"]


def test_summary_totals_equal_the_truth(http: httpx2.Client, app: LiveApp) -> None:
    start, end = app.now - app.now % DAY - 5 * DAY, app.now - app.now % HOUR + HOUR
    body = http.get("/api/summary", params={"start_time": start, "end_time": end}).json()
    tokens = dict.fromkeys(SOURCES, 0)
    for source in SOURCES:
        for row in app.org.truth(source, start, end).values():
            tokens[source] += row.get("input_tokens", 0) + row.get("output_tokens", 0)
    assert body["totals"]["tokens"] == sum(tokens.values())
    assert {r["source"]: r["tokens"] for r in body["by"]["source"]} == {
        s: t for s, t in tokens.items() if s in {r["source"] for r in body["by"]["source"]}
    }
    assert sum(r["tokens"] for r in body["by"]["person"]) == sum(tokens.values())
    billed = sum(app.org.cost_truth(start, end).values())
    # Money is a decimal string: exact, not a float.
    assert Decimal(body["billed_usd"]) == billed
    assert Decimal(body["estimated_usd"]) > 0


def test_health_reports_each_source_and_no_secret(http: httpx2.Client) -> None:
    body = http.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["database"]["ok"]
    assert {s["source"] for s in body["sync"]} == {*SOURCES, "costs"}
    assert all(s["age_seconds"] is not None for s in body["sync"])
    for path in ("/api/health", "/api/tiers", "/api/summary", "/", "/openapi.json", "/docs"):
        assert ADMIN_KEY not in http.get(path).text


def test_responses_carry_security_headers(http: httpx2.Client) -> None:
    response = http.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_docs_work_offline(http: httpx2.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui-5.35.0.bundle.js" in page.text
    assert http.get("/static/vendor/swagger-ui-5.35.0.bundle.js").status_code == 200
    spec = http.get("/openapi.json").json()
    assert {"/api/usage", "/api/summary", "/api/tiers", "/api/health"} <= set(spec["paths"])


def test_a_malformed_mapping_file_is_reported_and_the_last_good_one_kept(
    http: httpx2.Client, app: LiveApp
) -> None:
    mapping = app.workdir / "api_key_mappings.json"
    jane = next(k for k in app.org.keys if k.name == "jane-laptop")
    start = app.now - app.now % DAY - 7 * DAY
    params = [("start_time", start), ("group_by", "api_key_id")]

    def name_of_jane() -> str:
        body = http.get("/api/usage", params=params).json()
        return next(
            r["name"] for b in body["data"] for r in b["results"] if r["api_key_id"] == jane.id
        )

    try:
        mapping.write_text(json.dumps({jane.id: "J. Smith (laptop)"}))
        assert name_of_jane() == "J. Smith (laptop)"
        time.sleep(0.01)
        mapping.write_text('{\n  "key_x": "Someone",\n  "key_y": \n}\n')
        assert name_of_jane() == "J. Smith (laptop)"
        error = http.get("/api/health").json()["key_mappings_error"]
        assert "api_key_mappings.json, line 4, column 1" in error
        assert "line 4, column 1" in http.get("/").text
        mapping.write_text(json.dumps({jane.id: "J. Smith (laptop)"}, indent=1))
        assert name_of_jane() == "J. Smith (laptop)"
        mapping.unlink()  # a deleted file drops its names, and says so
        assert name_of_jane() == "Jane Smith"
        health = http.get("/api/health").json()
        assert "was deleted" in health["key_mappings_error"]
        assert health["status"] == "degraded"
        assert "was deleted" in http.get("/").text
    finally:
        mapping.write_text("{}")
    assert name_of_jane() == "Jane Smith"
    assert http.get("/api/health").json()["key_mappings_error"] is None


def test_a_directory_at_the_mapping_path_is_reported_not_a_500(
    http: httpx2.Client, app: LiveApp
) -> None:
    mapping = app.workdir / "api_key_mappings.json"
    mapping.unlink(missing_ok=True)
    mapping.mkdir()
    try:
        start = app.now - app.now % DAY
        assert http.get("/api/usage", params={"start_time": start}).status_code == 200
        assert http.get("/").status_code == 200
        health = http.get("/api/health")
        assert health.status_code == 200
        error = health.json()["key_mappings_error"]
        assert "KEY_MAPPINGS_FILE api_key_mappings.json: cannot read it" in error
        assert health.json()["status"] == "degraded"
        assert str(app.workdir) not in health.text  # health needs no sign-in: no paths
    finally:
        mapping.rmdir()
        mapping.write_text("{}")
    assert http.get("/api/health").json()["key_mappings_error"] is None


def test_pools_are_the_same_in_every_server_timezone(tmp_path: Path) -> None:
    """The real server started under three TZs answers the same UTC-day pools."""
    with live_app(f"sqlite:///{tmp_path / 'tz.db'}", tmp_path) as app:
        _same_pools_in_every_timezone(app, tmp_path)


def _same_pools_in_every_timezone(app: LiveApp, tmp_path: Path) -> None:
    answers = []
    for tz in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        env = {
            **os.environ,
            "TZ": tz,
            "DATABASE_URL": app.database_url,
            "PORT": "0",
            "AUTH_MODE": "none",
        }
        env.pop("OPENAI_ADMIN_KEY", None)
        answers.append(_tiers_from_a_server_process(env, tmp_path))
    figures = [
        {
            p: {k: v[k] for k in ("used", "limit", "remaining", "models")}
            for p, v in a["pools"].items()
        }
        for a in answers
    ]
    assert figures[0] == figures[1] == figures[2]
    assert answers[0]["day_start"] % DAY == 0
    table = load_pool_table()
    expected = {"large": 0, "small": 0}
    for (model,), row in app.org.truth(
        "completions", answers[0]["day_start"], app.now + 1, ["model"]
    ).items():
        if (pool := table.classify(str(model))) in expected:
            expected[pool] += row["input_tokens"] + row["output_tokens"]
    assert {p: f["used"] for p, f in figures[0].items()} == expected


def _tiers_from_a_server_process(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    with serve_process(env, cwd) as (url, _log):
        return dict(httpx2.get(url + "/api/tiers", timeout=10).json())


def test_header_sign_in_requires_the_trusted_proxys_header(tmp_path: Path) -> None:
    with live_app(f"sqlite:///{tmp_path / 'auth.db'}", tmp_path, auth_mode="header") as live:
        live_url = live.url
        assert httpx2.get(live_url + "/api/tiers").status_code == 401
        assert httpx2.get(live_url + "/").status_code == 401
        signed = httpx2.get(
            live_url + "/api/tiers", headers={"X-Forwarded-User": "jane@example.com"}
        )
        assert signed.status_code == 200
        assert httpx2.get(live_url + "/api/health").status_code == 200


def test_no_sign_in_is_refused_off_loopback() -> None:
    from usage_tracker.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="AUTH_MODE=none is refused"):
        load_settings(host="0.0.0.0", auth_mode="none")
    with pytest.raises(SettingsError, match="AUTH_MODE=header"):
        load_settings(host="0.0.0.0")
    with pytest.raises(SettingsError, match="needs TRUSTED_PROXIES"):
        load_settings(host="0.0.0.0", auth_mode="header")  # no proxy named: nobody signs in
    behind = load_settings(host="0.0.0.0", auth_mode="header", trusted_proxies="10.0.0.2")
    assert behind.auth_mode == "header"


def test_an_upstream_outage_on_the_minute_path_is_a_clear_502(
    http: httpx2.Client, app: LiveApp
) -> None:
    app.sim.faults.force(*["500"] * 20)
    try:
        start = app.now - app.now % 60 - 7 * 60  # a window no earlier test has cached
        response = http.get(
            "/api/usage", params={"start_time": start, "bucket_width": "1m", "limit": 7}
        )
    finally:
        app.sim.faults.forced.clear()
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "unavailable" in message
    assert ADMIN_KEY not in message


def test_a_fresh_install_without_data_or_key_still_serves(tmp_path: Path) -> None:
    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app
    from usage_tracker.web.serving import BackgroundServer

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
        auth_mode="none",
        key_mappings_file=tmp_path / "none.json",
    )
    with (
        BackgroundServer(create_app(settings)) as server,
        httpx2.Client(base_url=server.url) as client,
    ):
        page = client.get("/")
        assert page.status_code == 200
        assert "first sync running" in page.text
        health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        assert "OPENAI_ADMIN_KEY" in health["upstream_error"]
        assert client.get("/api/tiers").json()["pools"]["small"]["used"] == 0
        minute = client.get("/api/usage", params={"start_time": 3600, "bucket_width": "1m"})
        assert minute.status_code == 400
        assert "no admin key" in minute.json()["error"]["message"]


def test_the_openapi_document_describes_errors_as_served(http: httpx2.Client) -> None:
    spec = http.get("/openapi.json").json()
    usage = spec["paths"]["/api/usage"]["get"]["responses"]
    assert "422" not in usage
    assert usage["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_original_pages_request_for_a_utc_day_gets_that_days_totals(
    http: httpx2.Client, app: LiveApp
) -> None:
    """The original page asks for [local midnight, +86399] by day, grouped by key."""
    day = app.now - app.now % DAY - 3 * DAY
    params = {
        "start_time": day,
        "end_time": day + 86399,
        "bucket_width": "1d",
        "group_by": "api_key_id",
    }
    body = http.get("/api/usage", params=params).json()
    assert [(b["start_time"], b["end_time"]) for b in body["data"]] == [(day, day + DAY)]
    got = {r["api_key_id"]: r["input_tokens"] for r in body["data"][0]["results"]}
    truth = app.org.truth("completions", day, day + DAY, ["api_key_id"])
    assert got == {k: v["input_tokens"] for (k,), v in truth.items() if v["input_tokens"]}


@pytest.mark.parametrize("offset", [1, 1799, 3599])
def test_any_second_is_widened_to_the_hours_that_hold_it(
    http: httpx2.Client, app: LiveApp, offset: int
) -> None:
    hour = app.now - app.now % HOUR - 6 * HOUR
    params = {"start_time": hour + offset, "end_time": hour + 2 * HOUR + offset}
    body = http.get("/api/usage", params={**params, "bucket_width": "1h"}).json()
    served = [(b["start_time"], b["end_time"]) for b in body["data"]]
    assert served == [
        (hour, hour + HOUR),
        (hour + HOUR, hour + 2 * HOUR),
        (hour + 2 * HOUR, hour + 3 * HOUR),
    ]
    summary = http.get("/api/summary", params=params).json()
    assert (summary["start_time"], summary["end_time"]) == (hour, hour + 3 * HOUR)
    truth = app.org.truth("completions", hour, hour + 3 * HOUR, [])
    completions = next(r for r in summary["by"]["source"] if r["source"] == "completions")
    assert completions["input_tokens"] == sum(v["input_tokens"] for v in truth.values())


def test_scripts_can_ask_up_to_now(http: httpx2.Client, app: LiveApp) -> None:
    start = app.now - app.now % DAY
    body = http.get(
        "/api/usage", params={"start_time": start, "end_time": app.now, "bucket_width": "1h"}
    ).json()
    assert body["data"][-1]["end_time"] == app.now - app.now % HOUR + HOUR
    assert (
        http.get("/api/summary", params={"start_time": start, "end_time": app.now}).status_code
        == 200
    )


def _first_page(http: httpx2.Client, start: int) -> tuple[dict[str, Any], str]:
    params = {"start_time": start, "bucket_width": "1h", "limit": 2}
    body = http.get("/api/usage", params=params).json()
    assert body["has_more"]
    return params, body["next_page"]


def test_forged_or_altered_cursors_are_refused(http: httpx2.Client, app: LiveApp) -> None:
    import base64

    start = app.now - app.now % DAY - DAY
    params, cursor = _first_page(http, start)
    assert http.get("/api/usage", params={**params, "page": cursor}).status_code == 200
    fingerprint = f"completions:{start}:None:1h:"
    unsigned = "page_" + base64.urlsafe_b64encode(f"-7200|{fingerprint}".encode()).decode()
    _body, tag = cursor.removeprefix("page_").split(".")
    altered = (
        "page_"
        + base64.urlsafe_b64encode(f"{start - 3600}|{fingerprint}".encode()).decode().rstrip("=")
        + "."
        + tag
    )
    other_query = {**params, "start_time": start - DAY}
    for bad, query in [(unsigned, params), (altered, params), (cursor, other_query), ("x", params)]:
        response = http.get("/api/usage", params={**query, "page": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "page"


@pytest.mark.parametrize("position", [-7200, 0, 1, 1800])
def test_a_signed_cursor_must_still_be_a_bucket_of_its_query(
    http: httpx2.Client, app: LiveApp, position: int
) -> None:
    """Even one signed with the server's key: never before start_time, never off the hour."""
    from usage_tracker.web.cursors import CursorSigner

    start = app.now - app.now % DAY - DAY
    params, _ = _first_page(http, start)
    fingerprint = f"completions:{start}:None:1h:"
    forged = CursorSigner(ADMIN_KEY).encode(
        str(start + position if position > 0 else position), fingerprint
    )
    response = http.get("/api/usage", params={**params, "page": forged})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "page"


def test_a_bad_minute_page_is_refused_before_reaching_openai(
    http: httpx2.Client, app: LiveApp
) -> None:
    before = app.sim.requests["completions"]
    start = app.now - app.now % 60 - 5 * 60
    for page in ("page_AAAA", "../../organization/users", "x" * 5000):
        response = http.get(
            "/api/usage", params={"start_time": start, "bucket_width": "1m", "page": page}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "page"
    assert app.sim.requests["completions"] == before


def test_minute_pages_continue_through_signed_cursors(http: httpx2.Client, app: LiveApp) -> None:
    start = app.now - app.now % 60 - 90 * 60
    params = {"start_time": start, "end_time": start + 90 * 60, "bucket_width": "1m", "limit": 60}
    first = http.get("/api/usage", params=params).json()
    assert first["has_more"]
    second = http.get("/api/usage", params={**params, "page": first["next_page"]}).json()
    starts = [b["start_time"] for b in first["data"] + second["data"]]
    assert starts == list(range(start, start + 90 * 60, 60))


def test_a_slow_openai_cannot_stall_the_app_through_the_minute_path(tmp_path: Path) -> None:
    """Many distinct 1m requests while OpenAI is slow: a few go upstream, the rest get 503 with
    Retry-After at once, and health answers while the slow calls are still in flight."""
    from usage_tracker import simulator

    with live_app(f"sqlite:///{tmp_path / 'm.db'}", tmp_path) as live:
        live.sim.faults = simulator.Faults(rate=1.0, kinds=("slow",), slow_seconds=2.5)
        before = live.sim.requests["completions"]
        answers: dict[int, httpx2.Response] = {}
        health_done_while_busy: list[bool] = []

        def ask(i: int) -> None:
            start = live.now - live.now % 60 - (200 + i) * 60
            params = {"start_time": start, "bucket_width": "1m", "limit": 5}
            answers[i] = httpx2.get(live.url + "/api/usage", params=params, timeout=30)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the slow calls are now waiting on OpenAI
        health = httpx2.get(live.url + "/api/health", timeout=30)
        health_done_while_busy.append(any(t.is_alive() for t in threads))
        for t in threads:
            t.join()
    statuses = sorted(r.status_code for r in answers.values())
    assert health.status_code == 200
    assert health_done_while_busy == [True]
    assert statuses.count(200) == 4  # MinuteGateway's default max_in_flight
    assert statuses.count(503) == 8
    assert live.sim.requests["completions"] - before == 4
    busy = next(r for r in answers.values() if r.status_code == 503)
    assert busy.headers["retry-after"] == "5"
    assert "1m" in busy.json()["error"]["message"]


def test_a_failing_sync_shows_in_health_and_on_the_page(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        key_mappings_file=tmp_path / "none.json",
        auth_mode="none",
    )
    app = create_app(settings, run_sync=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        app.state.app_state.loop.record("The database cannot be written: the disk is full.")
        health = client.get("/api/health").json()
        assert health["status"] == "degraded"
        assert health["sync_error"] == "The database cannot be written: the disk is full."
        assert "the disk is full" in client.get("/").text


def test_a_database_that_goes_away_is_a_503_in_words_and_comes_back(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL restarting, seen from the app: pages and API answer 503 with the reason (the
    API as its JSON error body, the page with a banner), health says so, and all recover."""
    from sqlalchemy.engine import make_url

    from .relay import Relay

    with fresh_database(request, "postgresql", tmp_path) as url:
        parsed = make_url(url)
        with Relay((parsed.host or "127.0.0.1", parsed.port or 5432)) as relay:
            relayed = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(
                hide_password=False
            )
            with live_app(relayed, tmp_path) as live:
                start = live.now - live.now % DAY
                assert httpx2.get(live.url + "/api/summary").status_code == 200
                relay.cut()
                api = httpx2.get(live.url + "/api/summary", timeout=30)
                page = httpx2.get(live.url + "/", timeout=30)
                usage = httpx2.get(live.url + "/api/usage", params={"start_time": start})
                health = httpx2.get(live.url + "/api/health", timeout=30)
                relay.start()
                again = httpx2.get(live.url + "/api/summary", timeout=30)
                page_again = httpx2.get(live.url + "/", timeout=30)
    for response in (api, usage):
        assert response.status_code == 503
        assert response.json()["error"]["message"].startswith("The database is not available")
        assert response.headers["retry-after"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "The database is not available" in page.text
    assert health.status_code == 503
    assert health.json()["database"]["ok"] is False
    assert health.json()["status"] == "degraded"
    assert again.status_code == 200
    assert page_again.status_code == 200


@pytest.mark.parametrize("days", [1, 30, 90])
def test_billed_cost_per_key_person_and_project_equals_the_bill(
    http: httpx2.Client, app: LiveApp, days: int
) -> None:
    """Exact (Decimal) against the truth, on both backends; people add up to the bill, with
    costs that have no key as their own row."""
    from usage_tracker import reports
    from usage_tracker.store import Store

    end = app.now - app.now % DAY
    start = end - days * DAY
    body = http.get("/api/summary", params={"start_time": start, "end_time": end}).json()
    by = body["by"]

    def billed(grouping: str, field: str) -> dict[str, Decimal]:
        return {
            (r[field] or ""): Decimal(r["billed_cost"])
            for r in by[grouping]
            if Decimal(r["billed_cost"])
        }

    truth_keys = {k: v for (k,), v in app.org.cost_truth(start, end, ["api_key_id"]).items() if v}
    assert billed("api_key", "api_key") == {k or "": v for k, v in truth_keys.items()}
    truth_projects = app.org.cost_truth(start, end, ["project_id"])
    assert billed("project", "project") == {k or "": v for (k,), v in truth_projects.items() if v}
    store = Store.open(app.database_url)
    names = reports.load_names(store)
    store.close()
    truth_people: dict[str, Decimal] = {}
    for key, amount in truth_keys.items():
        person = names.person(key or "")
        truth_people[person] = truth_people.get(person, Decimal(0)) + amount
    assert billed("person", "person") == truth_people
    total = Decimal(body["billed_usd"])
    assert total == sum(app.org.cost_truth(start, end).values())
    assert sum(billed("person", "person").values()) == total
    assert sum(billed("model", "model").values()) == total
    assert all(r["billed_cost"] is None for r in by["user"] + by["source"])
    if "" in truth_keys:
        assert "(no key)" in billed("person", "person")  # costs without a key: their own row
    priced = [r for r in by["model"] if r["estimated_cost"] is not None]
    assert sum(Decimal(r["estimated_cost"]) for r in priced) == pytest.approx(
        Decimal(body["estimated_usd"]), abs=Decimal("0.01") * len(priced)
    )


def test_a_drill_down_narrows_billed_cost_to_the_person_or_model(
    http: httpx2.Client, app: LiveApp
) -> None:
    """Regression: a filter that matches no usage left rows without counters (a 500)."""
    end = app.now - app.now % DAY
    for params in ({"person": "nobody at all"}, {"model": "no-such-model"}):
        page = http.get("/", params={"range": "30d", **params})
        assert page.status_code == 200
    jane = http.get("/", params={"range": "30d", "person": "Jane Smith"})
    assert jane.status_code == 200
    keys = [k.id for k in app.org.keys if getattr(k, "owner_email", "") == "jane.smith@example.com"]
    assert len(keys) == 2
    from usage_tracker import reports
    from usage_tracker.store import Store

    store = Store.open(app.database_url)
    names = reports.load_names(store)
    start = end - 30 * DAY
    summary = reports.summary(store, names, start, end, where={"api_key_id": keys})
    store.close()
    truth = app.org.cost_truth(start, end, ["api_key_id"])
    assert summary["billed_usd"] == sum(v for (k,), v in truth.items() if k in keys)
    assert {r["person"] for r in summary["by"]["person"]} == {"Jane Smith"}


def test_reconciliation_puts_the_bill_beside_a_hand_computed_estimate(
    http: httpx2.Client, app: LiveApp
) -> None:
    from usage_tracker.reports.money import model_of_line_item

    end = app.now - app.now % DAY
    start = end - 7 * DAY
    body = http.get("/api/reconciliation", params={"start_time": start, "end_time": end}).json()
    assert (body["start_time"], body["end_time"]) == (start, end)
    truth: dict[str, Decimal] = {}
    for (item,), amount in app.org.cost_truth(start, end, ["line_item"]).items():
        model = model_of_line_item(item) or item
        truth[model] = truth.get(model, Decimal(0)) + amount
    got = {r["model"]: Decimal(r["billed"]) for r in body["by_model"] if Decimal(r["billed"])}
    assert got == {m: v for m, v in truth.items() if v}
    # One model-day by hand: each source's (tier, batch) group priced as its average request at
    # genai-prices' list prices, complimentary traffic free (the Decisions API's tokens too).
    from datetime import UTC, datetime

    from genai_prices import Usage, calc_price

    day = start + 2 * DAY
    by_hand = Decimal(0)
    groups = ["model", "service_tier", "batch"]
    every = [
        (key, m)
        for source in ("completions", "decisions")
        for key, m in app.org.truth(source, day, day + DAY, groups).items()
    ]
    for (model, tier, batch), m in every:
        if model != "gpt-4.1-mini" or tier == "incentivized-tier" or not m["num_model_requests"]:
            continue
        n = m["num_model_requests"]
        context = {"service_tier": tier} if tier in ("flex", "priority") else {}
        if batch:
            context["processing"] = "batch"
        one = Usage(
            input_tokens=Decimal(m["input_tokens"]) / n,
            cache_read_tokens=Decimal(m["input_cached_tokens"]) / n,
            output_tokens=Decimal(m["output_tokens"]) / n,
        )
        price = calc_price(
            one,
            "gpt-4.1-mini",
            provider_id="openai",
            genai_request_timestamp=datetime.fromtimestamp(day, UTC),
            price_context=context or None,
        )
        by_hand += Decimal(price.total_price) * n
    row = next(r for r in body["days"] if r["day"] == day and r["model"] == "gpt-4.1-mini")
    assert Decimal(row["estimated"]) == by_hand.quantize(Decimal("0.01"))
    assert Decimal(row["difference"]) == Decimal(row["billed"]) - Decimal(row["estimated"])
    findings = {f["model"]: f["finding"] for f in body["findings"]}
    assert set(findings.values()) <= {
        "unpriced",
        "billed more than estimated",
        "estimated more than billed",
    }
    not_estimated = {r["model"] for r in body["by_model"] if r["estimated"] is None} - set(findings)
    assert "vector store storage" in not_estimated  # no tokens behind it: no estimate, no finding
    for r in body["by_model"]:
        if r["estimated"] is not None:
            billed, estimated = Decimal(r["billed"]), Decimal(r["estimated"])
            off = abs(billed - estimated) > max(billed, estimated) * Decimal("0.05")
            assert (r["model"] in findings) == (off and abs(billed - estimated) > Decimal("0.01"))
    import datetime as dt

    first = dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat()
    page = http.get("/reconciliation", params={"start": first, "end": first})
    assert page.status_code == 200
    assert "Per day and model" in page.text


def test_the_forecast_equals_a_hand_computation(http: httpx2.Client, app: LiveApp) -> None:
    """Month to date, a 7-day run rate of complete days, and the projection, for the
    organization and one project, from the simulator's bill."""
    import calendar
    import datetime as dt

    body = http.get("/api/forecast").json()
    today = app.now - app.now % DAY
    date = dt.datetime.fromtimestamp(app.now, dt.UTC)
    month_start = int(dt.datetime(date.year, date.month, 1, tzinfo=dt.UTC).timestamp())
    days_in_month = calendar.monthrange(date.year, date.month)[1]
    days_left = (month_start + days_in_month * DAY - today) // DAY
    cent = Decimal("0.01")

    def by_hand(project: str | None) -> dict[str, Decimal]:
        def bill(lo: int, hi: int) -> Decimal:
            rows = app.org.cost_truth(lo, hi, ["project_id"])
            return sum((v for (p,), v in rows.items() if project in (None, p)), Decimal(0))

        complete = bill(month_start, today)
        rate = (bill(today - 7 * DAY, today) / 7).quantize(cent)  # as shown: the parts add up
        return {
            "month_to_date": complete + bill(today, app.now + 1),
            "before_today": complete,
            "daily_run_rate": rate,
            "projected_month_end": (complete + rate * days_left).quantize(cent),
        }

    assert body["days_left"] == days_left
    assert {k: Decimal(v) for k, v in body["organization"].items()} == by_hand(None)
    project = next(p for p in app.org.projects.values() if not p.archived_at)
    row = next(r for r in body["projects"] if r["name"] == project.name)
    assert {k: Decimal(row[k]) for k in by_hand(None)} == by_hand(project.id)
    assert "average daily bill of the last 7 complete days" in body["method"]
    people_total = sum(Decimal(r["month_to_date"]) for r in body["people"])
    assert people_total == Decimal(body["organization"]["month_to_date"])
    drill = http.get("/", params={"range": "mtd", "person": "Jane Smith"}).text
    assert 'id="month-trend"' in drill


def test_after_a_sync_the_presets_are_computed_and_a_write_retires_them(
    tmp_path: Path, sim: Any, sim_url: str
) -> None:
    """What a sync pass leaves: every preset's figures computed for the new data, so the first
    view is answered from memory; the next write moves the version and nothing stale is
    served."""
    from starlette.testclient import TestClient

    from usage_tracker.providers.openai import AdminClient
    from usage_tracker.settings import load_settings
    from usage_tracker.store import writes
    from usage_tracker.sync import sync_once
    from usage_tracker.web import create_app
    from usage_tracker.web.app import _after_sync
    from usage_tracker.web.pages import WARMED

    from .conftest import ADMIN_KEY, FAST_RETRY, NOW

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        key_mappings_file=tmp_path / "none.json",
        auth_mode="none",
    )
    app = create_app(settings, run_sync=False, clock=lambda: NOW)
    with (
        TestClient(app, base_url="http://127.0.0.1") as client,
        AdminClient(ADMIN_KEY, sim_url, retry=FAST_RETRY) as upstream,
    ):
        state = app.state.app_state
        assert sync_once(state.store, upstream, now=NOW).errors == []
        _after_sync(state)
        computed = dict(state.results.computed)
        assert computed["page"] == len(WARMED)  # today … last month: every preset but one
        page = client.get("/", params={"range": "30d"})
        today = client.get("/api/summary").json()
        assert page.status_code == 200
        assert state.results.computed["page"] == computed["page"]  # both from memory
        assert state.results.computed["summary.json"] == computed["summary.json"]
        before = today["totals"]["input_tokens"]
        assert before > 0
        with state.store.transaction() as conn:  # today's hours emptied: a write
            day = NOW - NOW % 86400
            writes.replace_usage(
                conn, "completions", day, day + 86400, [], estimate=state.store.prices.estimate
            )
        after = client.get("/api/summary").json()
        assert after["totals"]["input_tokens"] < before
        assert state.results.computed["summary.json"] == computed["summary.json"] + 1


def test_a_parameter_given_twice_is_refused_not_silently_the_last(app: LiveApp) -> None:
    """schemathesis sent start_time a dozen times and got 200 (FastAPI took the last one)."""
    for path in ("/api/summary", "/api/reconciliation", "/api/usage", "/api/export"):
        twice = httpx2.get(
            app.url + path, params=[("start_time", app.now - 86400), ("start_time", 0)]
        )
        assert twice.status_code == 400, path
        assert twice.json()["error"] == {
            "message": "Invalid value for 'start_time': given more than once.",
            "param": "start_time",
        }
    grouped = httpx2.get(
        app.url + "/api/usage",
        params=[("start_time", app.now - 86400), ("group_by", "model"), ("group_by", "project_id")],
    )
    assert grouped.status_code == 200  # group_by repeats by design


def test_a_model_openai_counted_free_that_no_list_names_is_said_once_on_the_page(
    tmp_path: Path,
) -> None:
    from html.parser import HTMLParser

    from usage_tracker.providers.records import DIMENSIONS, UsageResult
    from usage_tracker.store import Store, writes

    from .conftest import latest

    now = latest(18)
    with live_app(f"sqlite:///{tmp_path / 'f.db'}", tmp_path, now=now) as live:
        hour = now - now % 3600 - 3 * 3600
        key = live.org.keys[0]
        values = {"model": "gpt-6.2-sol", "service_tier": "incentivized-tier"}
        values |= {"api_key_id": key.id, "project_id": key.project_id}
        row = UsageResult(
            "completions",
            hour,
            hour + 3600,
            tuple(values.get(d) for d in DIMENSIONS),
            {"input_tokens": 90_000, "output_tokens": 100, "num_model_requests": 3},
        )
        store = Store.open(live.database_url)
        with store.transaction() as conn:  # this hour's completions: this one row
            writes.replace_usage(
                conn, "completions", hour, hour + 3600, [row], estimate=store.prices.estimate
            )
        store.close()
        tiers = httpx2.get(live.url + "/api/tiers").json()
        page = httpx2.get(live.url + "/").text

    class Banners(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []
            self._in = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "p" and "banner" in (dict(attrs).get("class") or ""):
                self._in = True
                self.texts.append("")

        def handle_endtag(self, tag: str) -> None:
            self._in = self._in and tag != "p"

        def handle_data(self, data: str) -> None:
            if self._in:
                self.texts[-1] += data

    assert tiers["free_group_unknown"] == [{"name": "gpt-6.2-sol", "tokens": 90_100}]
    assert {"name": "gpt-6.2-sol", "tokens": 90_100} in tiers["unclassified"]
    banners = Banners()
    banners.feed(page)
    naming = [t for t in banners.texts if "gpt-6.2-sol" in t]
    assert len(naming) == 1  # said once, as what it is
    assert naming[0].startswith("Counted free by OpenAI, group unknown: gpt-6.2-sol (90.1K)")

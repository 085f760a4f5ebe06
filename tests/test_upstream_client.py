"""The admin client: reads every source exactly, pages and retries, and fails with clear errors."""

from __future__ import annotations

import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from usage_tracker import simulator
from usage_tracker.providers.errors import (
    BadUpstreamResponseError,
    InvalidAdminKeyError,
    NotAdminKeyError,
    RateLimitedError,
    RevokedAdminKeyError,
    UpstreamUnavailableError,
)
from usage_tracker.providers.openai import AdminClient, RetryPolicy
from usage_tracker.providers.openai.contract import MAX_LIMIT, SOURCES
from usage_tracker.providers.openai.records import parse_cost_result, parse_usage_result
from usage_tracker.providers.records import DIMENSIONS
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, EXAMPLES, FAST_RETRY, NOW

DAY = 86400
READ_PATHS = ("usage", "costs", "projects", "users")
"""Examples of endpoints the client reads; the others are writes and admin-key management."""


def _mock_client(routes: dict[str, Any], seen: list[httpx2.Request] | None = None) -> AdminClient:
    """A client whose HTTP goes to ``routes`` (path suffix -> JSON body, or a handler)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(request)
        for suffix, body in sorted(routes.items(), key=lambda kv: -len(kv[0])):
            if request.url.path.endswith(suffix):
                if callable(body):
                    return body(request)  # type: ignore[no-any-return]
                return httpx2.Response(200, json=body)
        return httpx2.Response(
            404, json={"error": {"message": "no route", "type": "x", "param": None, "code": None}}
        )

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return AdminClient(ADMIN_KEY, "http://upstream.test/v1", retry=FAST_RETRY, http_client=http)


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def _first_page_then_end(body: dict[str, Any]) -> Callable[[httpx2.Request], httpx2.Response]:
    """Serve ``body`` and, for the cursor it names (if any), an empty last page."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if "page" in parse_qs(request.url.query.decode()):
            assert parse_qs(request.url.query.decode())["page"] == [body["next_page"]]
            return httpx2.Response(
                200, json={"object": "page", "data": [], "has_more": False, "next_page": None}
            )
        return httpx2.Response(200, json=body)

    return handler


# -- the published examples ----------------------------------------------------------------


NO_PUBLISHED_EXAMPLE = {"decisions"}
"""Sources newer than the published document (2026-08): their contract comes from the SDK's
types (scripts/contract_from_sdk.py), which carry no examples."""


@pytest.mark.parametrize("source", sorted(set(SOURCES) - NO_PUBLISHED_EXAMPLE))
def test_it_parses_each_usage_example(source: str) -> None:
    body = _example(f"get_organization_usage_{source}.response.json")
    seen: list[httpx2.Request] = []
    client = _mock_client({f"/usage/{source}": _first_page_then_end(body)}, seen)
    buckets = list(client.usage(source, 1730419200, 1730505600, bucket_width="1d"))
    raw_results = [r for b in body["data"] for r in b["results"]]
    results = [
        r for b in buckets if b.start_time == body["data"][0]["start_time"] for r in b.results
    ]
    assert len(results) == len(raw_results)
    for parsed, raw in zip(results, raw_results, strict=True):
        for name in SOURCES[source].metrics:
            assert parsed.metrics.get(name) == raw.get(name)
        for dim in SOURCES[source].group_by:
            assert parsed.dimension(dim) == raw.get(dim)  # fields newer than the example: absent
    assert len(seen) == (2 if body["has_more"] else 1)


@pytest.mark.parametrize("source", sorted(set(SOURCES) - NO_PUBLISHED_EXAMPLE))
def test_it_parses_each_result_schema_example(source: str) -> None:
    name = "".join(part.title() for part in source.split("_"))
    raw = _example(f"schema_Usage{name}Result.example.json")
    result = parse_usage_result(source, 0, 60, raw)
    assert {k: v for k, v in raw.items() if k in SOURCES[source].metrics} == dict(result.metrics)
    assert all(result.dimension(d) == raw.get(d) for d in DIMENSIONS if d in raw)


def test_it_parses_the_costs_examples() -> None:
    page = _example("get_organization_costs.response.json")
    client = _mock_client({"/organization/costs": page})
    (bucket,) = client.costs(1730419200, 1730505600)
    assert bucket.results[0].amount == Decimal("0.06")
    one = parse_cost_result(0, 1, _example("schema_CostsResult.example.json"))
    assert (one.amount, one.line_item, one.project_id, one.quantity, one.quantity_unit) == (
        Decimal("0.06"),
        "input_tokens",
        "proj_abc",
        Decimal(10000),
        "tokens",
    )
    assert one.api_key_id is None


def test_cost_results_are_taken_in_every_form_the_contract_allows_and_refused_otherwise() -> None:
    """An amount as a float (kept as written), an integer or a string; ids and the unit absent
    or strings; anything else is refused, naming the field."""
    base = {"amount": {"value": 0.06, "currency": "usd"}, "line_item": "gpt-4o, input"}
    assert parse_cost_result(0, 1, base).amount == Decimal("0.06")
    assert parse_cost_result(0, 1, {**base, "amount": {"value": 3}}).amount == Decimal(3)
    one = parse_cost_result(0, 1, {**base, "amount": {"value": "1.25"}, "project_id": "p"})
    assert (one.amount, one.currency, one.project_id, one.api_key_id) == (
        Decimal("1.25"),
        "usd",
        "p",
        None,
    )
    for field, value, named in (
        ("project_id", 7, "project_id"),
        ("api_key_id", ["k"], "api_key_id"),
        ("line_item", {"a": 1}, "line_item"),
        ("quantity_unit", 3, "quantity_unit"),
        ("amount", {"value": True}, "amount.value"),
        ("amount", {"value": "lots"}, "amount.value"),
        ("amount", {"value": 1, "currency": 5}, "currency"),
        ("amount", [1], "amount"),
        ("quantity", "many", "quantity"),
    ):
        with pytest.raises(BadUpstreamResponseError, match=named):
            parse_cost_result(0, 1, {**base, field: value})


def test_it_parses_the_name_examples() -> None:
    client = _mock_client(
        {
            "/organization/projects": _example("get_organization_projects.response.json"),
            "/api_keys": _example("get_organization_projects_project_id_api_keys.response.json"),
            "/organization/users": _example("get_organization_users.response.json"),
        }
    )
    (project,) = client.projects()
    assert (project.id, project.name, project.archived_at) == ("proj_abc", "Project example", None)
    (key,) = client.api_keys("proj_abc")
    assert (key.id, key.name, key.owner_type, key.owner_name, key.owner_email) == (
        "key_abc",
        "My API Key",
        "user",
        "First Last",
        "user@example.com",
    )
    (user,) = client.users()
    assert (user.id, user.name, user.email) == ("user_abc", "First Last", "user@example.com")


def test_every_example_of_a_read_endpoint_is_covered() -> None:
    read = {p.name for p in EXAMPLES.glob("get_organization_*.json")}
    covered = {
        f"get_organization_usage_{s}.response.json" for s in set(SOURCES) - NO_PUBLISHED_EXAMPLE
    } | {
        "get_organization_costs.response.json",
        "get_organization_projects.response.json",
        "get_organization_projects_project_id_api_keys.response.json",
        "get_organization_users.response.json",
    }
    single_items = {
        "get_organization_projects_project_id.response.json",
        "get_organization_projects_project_id_api_keys_api_key_id.response.json",
        "get_organization_users_user_id.response.json",
        "get_organization_admin_api_keys.response.json",
        "get_organization_admin_api_keys_key_id.response.json",
    }
    assert read == covered | single_items


def test_single_item_examples_parse_as_records() -> None:
    from usage_tracker.providers.openai.records import parse_api_key, parse_project, parse_user

    assert parse_project(_example("get_organization_projects_project_id.response.json")).id
    key = parse_api_key(
        "p", _example("get_organization_projects_project_id_api_keys_api_key_id.response.json")
    )
    assert key.id
    assert key.owner_type in ("user", "service_account")
    assert parse_user(_example("get_organization_users_user_id.response.json")).id
    assert parse_project(_example("schema_Project.example.json")).id
    assert parse_user(_example("schema_User.example.json")).id


# -- tolerance -----------------------------------------------------------------------------


def test_unknown_fields_are_ignored_and_missing_optional_fields_are_absent() -> None:
    raw = {
        "object": "organization.usage.completions.result",
        "input_tokens": 1000,
        "output_tokens": 10,
        "num_model_requests": 1,
        "input_cached_tokens": 400,
        "a_field_from_2027": {"nested": True},
        "api_source": "agents_api",
    }
    result = parse_usage_result("completions", 0, 3600, raw)
    assert result.metrics == {
        "input_tokens": 1000,
        "output_tokens": 10,
        "num_model_requests": 1,
        "input_cached_tokens": 400,
    }
    assert result.dimension("model") is None
    # input_tokens already includes the cached ones: the total is 1010, not 1410.
    assert result.total_tokens == 1010


def test_a_field_of_the_wrong_type_is_a_bad_response() -> None:
    page = {
        "object": "page",
        "has_more": False,
        "next_page": None,
        "data": [
            {
                "object": "bucket",
                "start_time": 0,
                "end_time": 3600,
                "results": [{"object": "x", "input_tokens": "many"}],
            }
        ],
    }
    client = _mock_client({"/usage/embeddings": page})
    with pytest.raises(BadUpstreamResponseError, match="input_tokens"):
        list(client.usage("embeddings", 0, 3600))


def test_a_page_that_is_not_a_page_is_a_bad_response() -> None:
    client = _mock_client({"/usage/embeddings": {"object": "list", "data": {}}})
    with pytest.raises(BadUpstreamResponseError, match="page of buckets"):
        list(client.usage("embeddings", 0, 3600))


# -- requests ------------------------------------------------------------------------------


def test_it_aligns_windows_asks_the_maximum_limit_and_groups_by_everything() -> None:
    seen: list[httpx2.Request] = []
    empty = {"object": "page", "data": [], "has_more": False, "next_page": None}
    client = _mock_client({"/usage/completions": empty, "/costs": empty}, seen)
    list(client.usage("completions", NOW - 30 * DAY + 17, NOW, bucket_width="1h"))
    list(client.costs(NOW - 400 * DAY, NOW))
    usage, costs, *more_costs = (parse_qs(r.url.query.decode()) for r in seen)
    assert int(usage["start_time"][0]) % 3600 == 0
    assert int(usage["start_time"][0]) <= NOW - 30 * DAY + 17
    assert int(usage["end_time"][0]) % 3600 == 0
    assert int(usage["end_time"][0]) >= NOW
    assert usage["limit"] == [str(MAX_LIMIT["1h"])]
    assert usage["group_by[]"] == list(SOURCES["completions"].group_by)
    # costs: a week first (OpenAI's default page), then the most days a page may hold (these
    # pages are empty), window after window with no gap
    assert [c["limit"] for c in (costs, *more_costs)] == [["7"], ["180"], ["180"], ["180"]]
    assert int(costs["start_time"][0]) % DAY == 0
    assert int(costs["end_time"][0]) == int(costs["start_time"][0]) + 7 * DAY
    for before, after in itertools.pairwise((costs, *more_costs)):
        assert after["start_time"] == before["end_time"]
    assert int(more_costs[-1]["end_time"][0]) >= NOW
    assert costs["group_by[]"] == ["project_id", "line_item", "api_key_id"]


def test_pages_hold_a_bounded_number_of_results_and_every_token_and_cent_arrives() -> None:
    """The sync's memory must not grow with the organization (issue 22): a costs page of 180
    days of a large organization held 245,000 results (800 MB while parsed). Past the client's
    page_results, the rest is asked for in fewer buckets per request."""
    sim = simulator.build(seed=3, days=60, clock=lambda: NOW)
    org = sim.org

    def client(budget: int) -> AdminClient:
        return AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY, page_results=budget)

    with BackgroundServer(sim) as server:
        with client(1000) as costs_client:  # a day holds 50 to 140 results
            cost_pages = list(costs_client.cost_pages(org.start, NOW))
        with client(100) as usage_client:  # a week of hours about 360
            usage_pages = [b for b, _ in usage_client.usage_pages("completions", org.start, NOW)]
    sizes = [sum(len(b.results) for b in page) for page in cost_pages]
    assert sum(sizes) > 4 * 1000  # 60 days at once would hold that
    # sized by the busiest bucket so far: only a busier one than any before goes past it
    assert max(sizes[1:]) <= 2 * 1000
    assert len(cost_pages) < 60  # and not a day at a time
    assert sum(r.amount for p in cost_pages for b in p for r in b.results) == sum(
        org.cost_truth(org.start, NOW).values()
    )
    days = [b.start_time for p in cost_pages for b in p]
    assert days == sorted(set(days))  # each day once, in order
    sizes = [sum(len(b.results) for b in page) for page in usage_pages]
    assert sizes[0] > 100  # the first page is a week of hours, as it was
    assert max(sizes[1:]) <= 2 * 100
    totals: dict[tuple[object, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    group_by = SOURCES["completions"].group_by
    for page in usage_pages:
        for bucket in page:
            for result in bucket.results:
                key = tuple(result.dimension(d) for d in group_by)
                for metric, value in result.metrics.items():
                    totals[key][metric] += value
    truth = org.truth("completions", org.start, NOW, group_by)
    assert {k: dict(v) for k, v in totals.items()} == truth


# -- keys and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("sk-proj-Zq81nVbK2mXx7TyL0pQrS4uV", NotAdminKeyError),
        ("sk-admin-unknownKey0123456789abcdEF", InvalidAdminKeyError),
        ("sk-admin-revoked-simulator", RevokedAdminKeyError),
    ],
)
def test_bad_keys_give_distinct_clear_errors_without_the_key(
    make_client: Callable[..., AdminClient],
    caplog: pytest.LogCaptureFixture,
    key: str,
    error: type[Exception],
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(key)
    with pytest.raises(error) as raised:
        list(client.usage("completions", NOW - DAY, NOW))
    assert type(raised.value) is error
    message = str(raised.value)
    assert "OPENAI_ADMIN_KEY" in message
    for text in (message, repr(raised.value), caplog.text):
        assert key not in text
        assert key[-4:] not in text
        assert key[:12] not in text
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert client.requests["completions"] == 1  # a bad key is not retried


def test_the_three_key_errors_have_three_different_messages(
    make_client: Callable[..., AdminClient],
) -> None:
    messages = set()
    for key in (
        "sk-proj-abcdefghijklmnopqrstu",
        "sk-admin-nope0123456789",
        "sk-admin-revoked-simulator",
    ):
        with pytest.raises(Exception) as raised:  # noqa: PT011 - each is checked by type above
            make_client(key).users()
        messages.add(str(raised.value))
    assert len(messages) == 3


def test_the_2025_missing_scope_error_is_also_not_an_admin_key() -> None:
    sim = simulator.build(seed=1, days=2, clock=lambda: NOW, scope_error_style="2025")
    with (
        BackgroundServer(sim) as server,
        AdminClient("sk-proj-x1y2z3w4v5u6", server.url + "/v1") as client,
        pytest.raises(NotAdminKeyError) as raised,
    ):
        list(client.costs(NOW - DAY, NOW))
    assert raised.value.status_code == 401


def test_a_bare_string_403_is_not_an_admin_key() -> None:
    body = _example("errors/403_missing_scope_api_usage_read_2026.json")
    client = _mock_client({"/usage/completions": lambda r: httpx2.Response(403, json=body)})
    with pytest.raises(NotAdminKeyError, match=r"api\.usage\.read"):
        list(client.usage("completions", 0, 3600))


def test_the_published_401_bodies_map_to_their_errors() -> None:
    invalid = _example("errors/401_invalid_api_key.json")
    scope = _example("errors/401_missing_scope_api_usage_read_2025.json")
    for body, error in ((invalid, InvalidAdminKeyError), (scope, NotAdminKeyError)):
        client = _mock_client(
            {"/organization/users": lambda r, b=body: httpx2.Response(401, json=b)}
        )
        with pytest.raises(error) as raised:
            client.users()
        assert "sk-xxx" not in str(raised.value)


def test_a_rejected_request_is_reported_with_openais_reason_scrubbed() -> None:
    body = {
        "error": {
            "message": "Invalid value for 'limit' with key sk-admin-abcdef1234",
            "type": "invalid_request_error",
            "param": "limit",
            "code": None,
        }
    }
    client = _mock_client({"/usage/images": lambda r: httpx2.Response(400, json=body)})
    with pytest.raises(BadUpstreamResponseError) as raised:
        list(client.usage("images", 0, 3600))
    assert "Invalid value for 'limit'" in str(raised.value)
    assert "sk-admin-abcdef1234" not in str(raised.value)


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "drop", "truncate", "slow"])
def test_it_retries_each_transient_fault(
    sim: simulator.Simulator, make_client: Callable[..., AdminClient], kind: str
) -> None:
    sim.faults.slow_seconds = 1.0
    sim.faults.force(kind, kind)
    waits: list[float] = []
    client = make_client(timeout=0.4, sleep=waits.append)
    buckets = list(client.usage("moderations", NOW - DAY, NOW))
    total = sum(r.metrics["input_tokens"] for b in buckets for r in b.results)
    assert (
        total == sim.org.truth("moderations", NOW - NOW % 3600 - 24 * 3600, NOW)[()]["input_tokens"]
    )
    assert client.retries["moderations"] == 2
    assert client.requests["moderations"] == 3
    assert sim.faults.injected[kind] == 2
    if kind == "429":
        assert all(w >= sim.faults.retry_after_ms / 1000 for w in waits)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", RateLimitedError),
        ("500", UpstreamUnavailableError),
        ("drop", UpstreamUnavailableError),
        ("truncate", BadUpstreamResponseError),
    ],
)
def test_it_gives_up_after_bounded_retries(
    sim: simulator.Simulator,
    make_client: Callable[..., AdminClient],
    kind: str,
    error: type[Exception],
) -> None:
    sim.faults.force(*[kind] * 10)
    waits: list[float] = []
    client = make_client(
        retry=RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.02), sleep=waits.append
    )
    with pytest.raises(error) as raised:
        client.users()
    assert client.requests["users"] == 4
    assert len(waits) == 3
    assert "4 attempts" in str(raised.value) or "4 times" in str(raised.value)


def test_backoff_is_exponential_and_bounded() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    delays = [policy.delay(n, None) for n in range(8)]
    assert all(0.5 <= d <= 5.0 for d in delays)
    assert policy.delay(0, None) <= 1.0 < policy.delay(3, None)
    assert policy.delay(0, 42.0) == 42.0


def test_a_retry_after_too_long_to_wait_fails_at_once() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            429,
            headers={"Retry-After": "3600"},
            json={"error": {"message": "slow down", "type": "x", "param": None, "code": None}},
        )

    client = _mock_client({"/organization/users": handler})
    with pytest.raises(RateLimitedError, match="3600"):
        client.users()
    assert client.requests["users"] == 1


# -- the acceptance run --------------------------------------------------------------------


def test_a_90_day_hourly_fetch_with_20_percent_faults_matches_the_truth_exactly() -> None:
    # A request is given up on after 2 s, and the "slow" fault takes 3 s: far enough apart that
    # a busy machine's ordinary slow answer is not taken for a fault (the counts below are exact).
    faults = simulator.Faults(rate=0.2, seed=11, slow_seconds=3.0)
    sim = simulator.build(seed=7, days=90, clock=lambda: NOW, faults=faults)
    org = sim.org
    with (
        BackgroundServer(sim) as server,
        AdminClient(
            ADMIN_KEY,
            server.url + "/v1",
            timeout=2.0,
            retry=RetryPolicy(max_retries=12, base_delay=0.005, max_delay=0.05),
        ) as client,
    ):
        for name, source in SOURCES.items():
            totals: dict[tuple[object, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
            buckets = 0
            for bucket in client.usage(name, org.start, NOW, bucket_width="1h"):
                buckets += 1
                for result in bucket.results:
                    key = tuple(result.dimension(d) for d in source.group_by)
                    for metric, value in result.metrics.items():
                        totals[key][metric] += value
            truth = org.truth(name, org.start, NOW, source.group_by)
            assert {k: dict(v) for k, v in totals.items()} == truth, name
            pages = -(-buckets // MAX_LIMIT["1h"])
            assert client.requests[name] == pages + client.retries[name], name
            assert sim.requests[name] == client.requests[name]
        costs = sum(r.amount for b in client.costs(org.start, NOW) for r in b.results)
        assert costs == sum(org.cost_truth(org.start, NOW).values())
    assert sum(faults.injected.values()) > 20
    assert set(faults.injected) == set(simulator.FAULT_KINDS)
    assert sum(client.retries.values()) == sum(faults.injected.values())


def test_a_failing_upstream_is_said_at_once_and_cleared_by_the_next_success(
    sim: simulator.Simulator, make_client: Callable[..., AdminClient]
) -> None:
    """A 429 left health "ok" for 60-75 s (the time the retries took): the trouble is known
    from the first fault."""
    seen: list[str | None] = []
    client: AdminClient

    def sleep(_seconds: float) -> None:
        seen.append(client.trouble)  # what health would say while the retry waits

    client = make_client(sleep=sleep)
    sim.faults.force("429", "500")
    client.projects()
    assert seen == [
        "OpenAI is rate-limiting requests (429); retrying",
        "OpenAI is failing (HTTP 500); retrying",
    ]
    assert client.trouble is None


def test_a_run_against_a_failing_upstream_gives_up_within_the_trouble_budget(
    sim: simulator.Simulator, make_client: Callable[..., AdminClient]
) -> None:
    """Every call retried on its own: a pass over 12 sources against an upstream that keeps
    failing took minutes. Past the budget, each further call gives up at its first fault."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(max_retries=6, base_delay=1.0, max_delay=8.0, trouble_budget=10.0)
    client = make_client(retry=policy, sleep=sleep)
    sim.faults.rate, sim.faults.kinds = 1.0, ("500",)
    import time as time_module

    real = time_module.monotonic
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time_module, "monotonic", lambda: real() + clock[0])
        for _ in range(5):
            with pytest.raises(UpstreamUnavailableError):
                client.projects()
    # The first call spends the budget (about 10 s of backoff), the next four one attempt each.
    assert sim.faults.injected["500"] <= 6 + 4
    assert client.trouble == "OpenAI is failing (HTTP 500); retrying"

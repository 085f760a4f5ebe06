"""Whatever the query string, the API and the page answer 2xx or a 4xx with a message: never 5xx."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import LiveApp, live_app

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2_000_000_000).map(lambda t: t - t % 3600),
    st.text(max_size=12),
)
WORDS = st.sampled_from(
    [
        "",
        "none",
        "model",
        "api_key_id",
        "user_id",
        "project_id",
        "batch",
        "size",
        "source",
        "x",
        "1d",
        "1h",
        "1m",
        "2h",
        "completions",
        "images",
        "today",
        "custom",
        "7d",
    ]
)
VALUES = st.one_of(
    NUMBERS.map(str), WORDS, st.dates().map(lambda d: d.isoformat()), st.text(max_size=20)
)
PARAMS = [
    "start_time",
    "end_time",
    "bucket_width",
    "group_by",
    "group_by[]",
    "source",
    "limit",
    "page",
    "range",
    "start",
    "end",
    "stack",
    "person",
    "model",
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with live_app(f"sqlite:///{workdir / 'fuzz.db'}", workdir) as live:
        yield live


@pytest.mark.parametrize("path", ["/api/usage", "/api/summary", "/"])
def test_no_query_string_makes_the_server_fail(app: LiveApp, path: str) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:

        @settings(
            max_examples=120,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(st.lists(st.tuples(st.sampled_from(PARAMS), VALUES), max_size=6))
        def check(query: list[tuple[str, str]]) -> None:
            response = client.get(path, params=query)
            assert response.status_code < 500, (query, response.text[:300])
            if response.status_code >= 400:
                assert response.json()["error"]["message"]

        check()


def test_no_custom_range_makes_the_page_fail(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:

        @settings(max_examples=80, deadline=None)
        @given(st.dates(), st.dates(), st.sampled_from(["person", "model"]))
        @example(dt.date.max, dt.date.max, "person")
        @example(dt.date.min, dt.date.max, "model")
        @example(dt.date(1970, 1, 1), dt.date(2020, 1, 1), "model")
        def check(start: object, end: object, stack: str) -> None:
            query = {"range": "custom", "start": str(start), "end": str(end), "stack": stack}
            response = client.get("/", params=query)
            assert response.status_code == 200, (query, response.text[:300])

        check()

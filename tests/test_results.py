"""The result cache (web/results.py): one computation per question and version, however many
requests ask at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from usage_tracker.people.names import KeyMappings
from usage_tracker.store import Store
from usage_tracker.web.results import Results, weight


@pytest.fixture
def results(tmp_path: Path) -> Results:
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    return Results(store, KeyMappings(tmp_path / "none.json"))


def test_requests_asking_at_once_share_one_computation(results: Results) -> None:
    version = results.version()
    release = threading.Event()
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        release.wait(10)
        return {"answer": 42}

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(results.get, ("q", version, 1), compute) for _ in range(8)]
        while not calls:  # the first has started; the others are asking meanwhile
            threading.Event().wait(0.01)
        threading.Event().wait(0.2)
        release.set()
        answers = [f.result(10) for f in futures]
    assert len(calls) == 1
    assert all(a is answers[0] for a in answers)
    assert results.computed["q"] == 1
    assert results.peek(("q", version, 1)) == {"answer": 42}
    assert results.peek(("q", version, 2)) is None


def test_a_failed_computation_is_not_cached_and_a_waiting_request_tries_itself(
    results: Results,
) -> None:
    version = results.version()
    started, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def failing() -> str:
        started.set()
        release.wait(10)
        raise RuntimeError("database went away")

    def working() -> str:
        outcomes.append("computed by the waiting request")
        return "fine"

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(results.get, ("q", version), failing)
        assert started.wait(10)
        second = pool.submit(results.get, ("q", version), working)
        threading.Event().wait(0.2)
        release.set()
        with pytest.raises(RuntimeError, match="went away"):
            first.result(10)
        assert second.result(10) == "fine"
    assert outcomes == ["computed by the waiting request"]
    assert results.peek(("q", version)) == "fine"


def test_another_version_empties_the_cache(results: Results) -> None:
    old = results.version()
    assert results.get(("q", old), lambda: "old") == "old"
    new = (old[0] + 1, old[1])
    assert results.get(("q", new), lambda: "new") == "new"
    assert results.peek(("q", old)) is None


def test_the_cache_holds_at_most_its_bytes_and_lets_the_least_recently_asked_go(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    results = Results(store, KeyMappings(tmp_path / "none.json"), max_bytes=3_500_000)
    version = results.version()
    mb = [bytes([i]) * 1_000_000 for i in range(5)]
    for i in range(3):
        assert results.get(("q", version, i), lambda i=i: mb[i]) is mb[i]
    assert results.peek(("q", version, 0)) is mb[0]  # asked again: now the most recent
    results.get(("q", version, 3), lambda: mb[3])
    assert results.peek(("q", version, 1)) is None  # the least recently asked went
    assert [results.peek(("q", version, i)) is not None for i in (0, 2, 3)] == [True] * 3
    assert 3_000_000 < results.held <= 3_500_000
    whole = bytes(4_000_000)  # more than the whole cache: answered, not kept
    assert results.get(("q", version, "big"), lambda: whole) is whole
    assert results.peek(("q", version, "big")) is None
    assert results.peek(("q", version, 3)) is mb[3]


def test_a_reports_weight_is_estimated_within_a_third_of_what_it_allocated() -> None:
    import tracemalloc
    from decimal import Decimal

    names = [f"metric_{m}" for m in range(30)]  # a report's keys are its fields' names
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    report = {
        "by": {
            g: [
                {
                    "api_key": f"key_{g}_{i:05d}",
                    "name": f"A person called {i}" * (1 + i % 3),
                    "estimated_usd": Decimal(i) / 7,
                    **{name: i * 10**9 + m for m, name in enumerate(names)},
                }
                for i in range(n)
            ]
            for g, n in (("api_key", 600), ("model", 40), ("source", 12))
        },
        "totals": {"tokens": 10**12},
    }
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    estimated = weight(report)
    assert allocated * 2 / 3 < estimated < allocated * 4 / 3, (estimated, allocated)

"""The running totals (usage_running, costs_running) on both backends: on every day they hold
what the rows stored before it add up to, through rewrites anywhere, values first used late, an
end emptied and a backfill's deferred pass; ranges read from them equal the rows; migration 0022
builds exactly what upkeep keeps, and its downgrade the blocks it replaced."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from usage_tracker.providers.records import DIMENSIONS, CostResult, UsageResult
from usage_tracker.store import Store, folding, schema, writes

HOUR, DAY = 3600, 86400
T = 3000 * DAY
METRICS = ("input_tokens", "output_tokens", "num_model_requests")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url)
    yield store
    store.close()


def _usage(ts: int, tokens: int, source: str = "completions", **dims: str) -> UsageResult:
    return UsageResult(
        source,
        ts,
        ts + HOUR,
        tuple(dims.get(d) for d in DIMENSIONS),
        {"input_tokens": tokens, "output_tokens": tokens % 7, "num_model_requests": 1},
    )


def _write(
    store: Store,
    lo: int,
    hi: int,
    results: list[UsageResult],
    *,
    connection: str = "openai",
    source: str = "completions",
    defer: bool = False,
) -> None:
    with store.transaction() as conn:
        writes.replace_usage(
            conn,
            source,
            lo,
            hi,
            results,
            estimate=store.prices.estimate,
            connection=connection,
            defer_blocks=defer,
        )


def _hours(lo: int, hi: int, step: int, seed: int) -> list[UsageResult]:
    return [
        _usage(
            t,
            10 + (t // HOUR * seed) % 90,
            model=f"m{(t // HOUR + seed) % 3}",
            api_key_id=f"k{(t // HOUR * seed) % 5}",
            project_id=f"p{seed}",
        )
        for t in range(lo, hi, step * HOUR)
    ]


def _two_connections(store: Store, days: int, second_from: int) -> None:
    """``days`` of ``openai`` from T, and of ``staging`` from day ``second_from`` on."""
    _write(store, T, T + days * DAY, _hours(T, T + days * DAY, 5, 1))
    lo, hi = T + second_from * DAY, T + days * DAY
    _write(store, lo, hi, _hours(lo, hi, 7, 2), connection="staging")


def _on_day(store: Store, table: Any, day: int, summed: tuple[str, ...]) -> dict[Any, Any]:
    """What a read finds on ``day``: the rows of the last day stored up to it."""
    last = select(func.max(table.c.day)).where(table.c.day <= day).scalar_subquery()
    query = select(table.c.grouping, table.c.value, table.c.connection, *table.c[summed])
    with store.engine.connect() as conn:
        rows = conn.execute(query.where(table.c.day == last)).all()
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def _usage_before(store: Store, day: int) -> dict[Any, Any]:
    """Every value's sums of the hourly rows before ``day``, those not all zero."""
    hourly = schema.usage
    with store.engine.connect() as conn:
        rows = conn.execute(select(hourly).where(hourly.c.bucket_start < day)).mappings().all()
    out: dict[Any, list[int]] = {}
    for row in rows:
        for grouping, column in schema.FOLDED.items():
            sums = out.setdefault((grouping, row[column], row["connection"]), [0] * len(METRICS))
            for i, m in enumerate(METRICS):
                sums[i] += row[m]
    return {k: tuple(v) for k, v in out.items() if any(v)}


def _every_day_holds_what_came_before(store: Store, lo: int, hi: int) -> None:
    for day in range(lo, hi, DAY):
        assert _on_day(store, schema.usage_running, day, METRICS) == _usage_before(store, day), (
            day - T
        ) // DAY


RANGES = (
    (T - 30 * DAY, T + 60 * DAY),
    (T + 2 * DAY + 5 * HOUR, T + 17 * DAY + 13 * HOUR),
    (T + 3 * DAY, T + 9 * DAY),
    (T + 6 * DAY, T + 12 * DAY + 3 * HOUR),  # from the day the second connection begins
    (T + 11 * DAY, T + 40 * DAY),  # past the last day stored
)


def _ranges_read_as_the_rows(store: Store, ranges: Iterable[tuple[int, int]] = RANGES) -> None:
    for start, end in ranges:
        totals = store.folded_totals(start, end, list(METRICS))
        for grouping, column in schema.FOLDED.items():
            by = list(dict.fromkeys([column, "connection"]))
            expected: dict[str, dict[str, Any]] = {}
            for row in store.usage_totals(start, end, by, metrics=list(METRICS)):
                seen = expected.setdefault(row[column], {**row, **dict.fromkeys(METRICS, 0)})
                if seen["connection"] != row["connection"]:  # one row across connections
                    seen["connection"] = None
                for m in METRICS:
                    seen[m] += row[m]
            read = {r[column]: r for r in totals[grouping]}
            assert read == expected, (grouping, (start - T) / DAY, (end - T) / DAY)


def test_every_day_holds_the_rows_before_it_through_any_rewrite(store: Store) -> None:
    _two_connections(store, 20, 6)  # the second's values first used on day 6
    # another source on a few days
    _write(
        store,
        T + 2 * DAY,
        T + 4 * DAY,
        [_usage(T + 2 * DAY + h * HOUR, 5, "embeddings", model="e") for h in range(30)],
        source="embeddings",
    )
    _every_day_holds_what_came_before(store, T - 2 * DAY, T + 24 * DAY)
    _ranges_read_as_the_rows(store)
    # Part of day 3 and all of day 4 again, a key first used there.
    _write(
        store,
        T + 3 * DAY + 7 * HOUR,
        T + 5 * DAY,
        [_usage(T + 4 * DAY, 3, api_key_id="new", model="m0")],
    )
    # The last days emptied: the totals stop growing there.
    _write(store, T + 17 * DAY, T + 20 * DAY, [], connection="openai")
    _write(store, T + 17 * DAY, T + 20 * DAY, [], connection="staging")
    # A day before everything: every total after it grows.
    _write(
        store,
        T - 5 * DAY,
        T - 4 * DAY,
        [_usage(T - 5 * DAY + HOUR, 11, model="m1", api_key_id="k1")],
    )
    _every_day_holds_what_came_before(store, T - 7 * DAY, T + 24 * DAY)
    _ranges_read_as_the_rows(store)


def test_a_range_with_any_edges_reads_as_the_rows(store: Store) -> None:
    """Whole hours anywhere around data that ends in the middle of a day: each edge read as
    its part of a day, or as the whole day less the rest (where the rest holds fewer six-hour
    blocks: at a range's end after the last hour stored, nothing), with or without running
    totals for the days between."""
    _two_connections(store, 12, 3)
    _write(store, T + 12 * DAY, T + 13 * DAY, _hours(T + 12 * DAY, T + 12 * DAY + 15 * HOUR, 1, 4))
    # A key of several users and projects, with several models: the edges' hours are summed
    # per key, user and project together, and per model and source (one pass each on SQLite).
    shared = [
        _usage(
            T + 4 * DAY + h * HOUR,
            7 + h,
            "embeddings",
            model=f"e{h % 2}",
            api_key_id="k1",
            user_id=f"u{h % 3}",
            project_id=f"p{h % 4}",
        )
        for h in range(48)
    ]
    _write(store, T + 4 * DAY, T + 6 * DAY, shared, source="embeddings")
    pick = random.Random(19)
    lengths = (1, 3, 5, 7, 23, 26, 30, 4 * 24 + 9, 5 * 24 + 7, 6 * 24 + 20, 9 * 24 + 13, 300)
    ranges = []
    for _ in range(60):
        start = T + pick.randrange(-3 * 24, 14 * 24) * HOUR
        ranges.append((start, start + pick.choice(lengths) * HOUR))
    ranges += [  # ending at the hour after the last stored, and later, from every hour of a day
        (T + 12 * DAY + 16 * HOUR - days * DAY - h * HOUR, T + 12 * DAY + 16 * HOUR + late * HOUR)
        for days in (1, 6)
        for h in range(0, 24, 5)
        for late in (0, 7)
    ]
    # within one six-hour block, its first and last hours left out: the block less them
    ranges += [(T + d * DAY + 13 * HOUR, T + d * DAY + 17 * HOUR) for d in (2, 5, 12)]
    _ranges_read_as_the_rows(store, ranges)
    # Any groupings read alone or together (the connection's own alone: no family to go with)
    # are what they are among all of them.
    for start, end in ranges[::7]:
        every = store.folded_totals(start, end, list(METRICS))
        for some in (["connection"], ["model"], ["user", "connection"], ["api_key", "source"]):
            assert store.folded_totals(start, end, list(METRICS), some) == {
                g: every[g] for g in some
            }, (some, (start - T) / DAY, (end - T) / DAY)


def test_a_deferred_pass_is_summed_once_at_its_end(store: Store) -> None:
    """A first backfill's pages leave the running totals to its end; reads take the blocks
    meanwhile and the rows are what page-by-page upkeep makes."""
    _write(store, T, T + 3 * DAY, _hours(T, T + 3 * DAY, 4, 3))  # already there
    for lo in range(T + 3 * DAY, T + 21 * DAY, 3 * DAY):
        _write(store, lo, lo + 3 * DAY, _hours(lo, lo + 3 * DAY, 5, 1), defer=True)
    with store.engine.connect() as conn:
        assert folding.deferred(conn) == (T + 3 * DAY, T + 21 * DAY)
        waiting = conn.execute(select(func.max(schema.usage_running.c.day))).scalar()
    assert waiting == T + 3 * DAY  # nothing summed yet after the page written without
    _ranges_read_as_the_rows(store)  # from the blocks
    assert store.settle_blocks()
    _every_day_holds_what_came_before(store, T - DAY, T + 23 * DAY)
    _ranges_read_as_the_rows(store)
    with store.transaction() as conn:  # summed again from nothing: the same rows
        kept = sorted(map(tuple, conn.execute(select(schema.usage_running)).all()))
        folding.run_totals(conn, schema.usage_folded, T - 100 * DAY)
        assert sorted(map(tuple, conn.execute(select(schema.usage_running)).all())) == kept


def _costs(days: range, seed: int) -> list[CostResult]:
    return [
        CostResult(
            d,
            d + DAY,
            f"p{(d // DAY) % 2}",
            f"item {(d // DAY * seed) % 3}",
            f"k{(d // DAY + seed) % 4}" if seed % 2 else None,
            Decimal(f"{(d // DAY * seed) % 17}.0123456789"),
            "usd",
            None,
            None,
        )
        for d in days
    ]


def test_billed_cost_of_any_days_reads_as_the_rows(store: Store) -> None:
    with store.transaction() as conn:
        writes.replace_costs(conn, T, T + 30 * DAY, _costs(range(T, T + 30 * DAY, DAY), 1))
        writes.replace_costs(
            conn,
            T + 9 * DAY,
            T + 30 * DAY,
            _costs(range(T + 9 * DAY, T + 30 * DAY, DAY), 2),
            connection="staging",
        )
    with store.transaction() as conn:  # days 5-11 again, and the last two emptied
        writes.replace_costs(
            conn, T + 5 * DAY, T + 12 * DAY, _costs(range(T + 5 * DAY, T + 12 * DAY, DAY), 5)
        )
        writes.replace_costs(conn, T + 28 * DAY, T + 30 * DAY, [])
    for start, end in (
        (T - 10 * DAY, T + 50 * DAY),
        (T + 3 * DAY + 5 * HOUR, T + 20 * DAY),
        (T + 8 * DAY, T + 11 * DAY),  # a few days: from their blocks
        (T + 10 * DAY, T + 29 * DAY + HOUR),
    ):
        read = store.folded_costs(start, end)
        for grouping, column in schema.COSTS_FOLDED.items():
            rows = store.cost_totals(start - start % DAY, end, [column])
            expected = {r[column]: r["amount"] for r in rows if r["amount"]}
            assert {r[column]: r["amount"] for r in read[grouping]} == expected, grouping


def test_migration_0022_builds_what_upkeep_keeps_and_its_downgrade_the_longer_blocks(
    database_url: str,
) -> None:
    """Taken back to 0021, a database has the blocks of 2 to 256 days again, each the sum of
    the days it spans; brought back to the head, its running totals are, row for row, what the
    writes had kept."""
    from alembic import command
    from alembic.config import Config

    from usage_tracker.store.db import MIGRATIONS

    store = Store.open(database_url)
    _two_connections(store, 40, 9)
    _write(store, T + 38 * DAY, T + 40 * DAY, [], connection="staging")  # days of zero blocks
    with store.transaction() as conn:
        writes.replace_costs(conn, T, T + 30 * DAY, _costs(range(T, T + 30 * DAY, DAY), 1))
    running = (schema.usage_running, schema.costs_running)

    def rows(table: Any) -> list[tuple[Any, ...]]:
        with store.engine.connect() as conn:
            return sorted(map(tuple, conn.execute(select(table)).all()))

    kept = {t.name: rows(t) for t in running}
    assert all(kept.values())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0021")
    for folded in (schema.usage_folded, schema.costs_folded):
        by_block = {c.name for c in folded.columns} - {"start", "grouping", "value", "connection"}
        summed = [c.name for c in folded.columns if c.name in by_block - {"hours"}]
        days = [r for r in rows(folded) if r[0] == 24]
        for length in (48, 96, 192, 384, 768, 1536, 3072, 6144):
            expected: dict[tuple[Any, ...], list[int]] = {}
            for _, start, *key_and_sums in days:
                key = (length, start - start % (length * HOUR), *key_and_sums[:3])
                sums = expected.setdefault(key, [0] * len(summed))
                for i, v in enumerate(key_and_sums[3:]):
                    sums[i] += v
            stored = [r for r in rows(folded) if r[0] == length]
            assert len(stored) == len(expected) > 0
            assert {tuple(r[:5]): list(r[5:]) for r in stored} == expected, (folded.name, length)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert {t.name: rows(t) for t in running} == kept
    with store.engine.connect() as conn:  # the longer blocks went again
        longer = select(func.count()).where(schema.usage_folded.c.hours.not_in([6, 24, 168]))
        assert conn.execute(longer).scalar() == 0
    store.close()

"""The store on both backends: migrations, whole-bucket replacement, exact money, the rollup."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from usage_tracker.providers.records import DIMENSIONS, CostResult, UsageResult
from usage_tracker.store import Store, schema, writes
from usage_tracker.store.db import migrate

HOUR, DAY = 3600, 86400


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url)
    yield store
    store.close()


def _result(ts: int, model: str, tokens: int, **dims: str | bool | None) -> UsageResult:
    values = {"model": model, **dims}
    return UsageResult(
        "completions",
        ts,
        ts + HOUR,
        tuple(values.get(d) for d in DIMENSIONS),
        {"input_tokens": tokens, "output_tokens": 1, "num_model_requests": 1},
    )


def _with_connection(column: str) -> list[str]:
    """A folded grouping's column and the connection: what the folded rows carry (each value
    with the connection it was used in, here always the one)."""
    return list(dict.fromkeys([column, "connection"]))


def test_migrations_build_exactly_the_schema_and_rerun_as_no_ops(store: Store) -> None:
    migrate(store.engine)  # a second time: nothing to do
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    # Scaled amounts are BIGINT in the database; alembic sees the same type.
    assert diff == []


def test_upgrading_a_database_with_usage_keeps_every_row(database_url: str) -> None:
    """0005 adds api_source to the usage key: rows stored before it keep their figures, as
    not grouped by it, and a re-sync of their hours replaces them rather than adding beside."""
    from alembic import command
    from alembic.config import Config

    from usage_tracker.store.db import MIGRATIONS, connect

    engine = connect(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    t = 100 * DAY
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        dims = [d for d in schema.USAGE_DIMENSIONS if d != "api_source"]
        values = ", ".join("'m'" if d == "model" else "''" for d in dims)
        for table, time in (("usage", "bucket_start"), ("usage_daily", "day")):
            conn.exec_driver_sql(
                f"INSERT INTO {table} (source, {time}, {', '.join(dims)}, input_tokens) "
                f"VALUES ('completions', {t}, {values}, 7)"
            )
    engine.dispose()
    store = Store.open(database_url)
    try:
        rows = store.usage_totals(t, t + HOUR, ["model", "api_source"])
        assert [(r["model"], r["api_source"], r["input_tokens"]) for r in rows] == [("m", "", 7)]
        with store.transaction() as conn:
            writes.replace_usage(
                conn,
                "completions",
                t,
                t + HOUR,
                [_result(t, "m", 9)],
                estimate=store.prices.estimate,
            )
        assert store.row_count("usage") == 1
    finally:
        store.close()


def test_replacing_a_range_replaces_whole_buckets(store: Store) -> None:
    t = 100 * DAY
    with store.transaction() as conn:
        writes.replace_usage(
            conn,
            "completions",
            t,
            t + 3 * HOUR,
            [_result(t, "a", 10), _result(t + HOUR, "a", 20), _result(t + 2 * HOUR, "b", 30)],
            estimate=store.prices.estimate,
        )
    with store.transaction() as conn:
        # The middle hour is re-fetched: it now holds only model c, and batch is now known.
        writes.replace_usage(
            conn,
            "completions",
            t + HOUR,
            t + 2 * HOUR,
            [_result(t + HOUR, "c", 5, batch=False)],
            estimate=store.prices.estimate,
        )
    rows = store.usage_totals(t, t + 3 * HOUR, ["hour", "model", "batch"], metrics=["input_tokens"])
    assert rows == [
        {"hour": t, "model": "a", "batch": "", "input_tokens": 10},
        {"hour": t + HOUR, "model": "c", "batch": "false", "input_tokens": 5},
        {"hour": t + 2 * HOUR, "model": "b", "batch": "", "input_tokens": 30},
    ]
    assert store.row_count("usage") == 3


def test_a_failed_write_leaves_nothing_half_written(store: Store) -> None:
    t = 100 * DAY
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", t, t + HOUR, [_result(t, "a", 10)], estimate=store.prices.estimate
        )

    def interrupted() -> None:
        with store.transaction() as conn:
            writes.replace_usage(
                conn,
                "completions",
                t,
                t + HOUR,
                [_result(t, "b", 99)],
                estimate=store.prices.estimate,
            )
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        interrupted()
    assert store.usage_totals(t, t + HOUR, ["model"], metrics=["input_tokens"]) == [
        {"model": "a", "input_tokens": 10}
    ]


def test_totals_by_day_and_hour_match_the_hours_on_any_range(store: Store) -> None:
    t = 200 * DAY
    results = [_result(t + h * HOUR, f"m{h % 3}", h + 1) for h in range(24 * 5)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", t, t + 5 * DAY, results, estimate=store.prices.estimate
        )
    for start, end in [
        (t, t + 5 * DAY),
        (t + 5 * HOUR, t + 4 * DAY + 7 * HOUR),
        (t + HOUR, t + 2 * HOUR),
    ]:
        expected: dict[str, int] = {}
        for r in results:
            if start <= r.start_time < end:
                expected[str(r.dimension("model"))] = (
                    expected.get(str(r.dimension("model")), 0) + r.metrics["input_tokens"]
                )
        got = store.usage_totals(start, end, ["model"], metrics=["input_tokens"])
        assert {r["model"]: r["input_tokens"] for r in got} == expected


def test_money_sums_exactly(store: Store) -> None:
    amounts = [Decimal("0.1"), Decimal("0.2"), Decimal("0.0000125"), Decimal("123456.789012")]
    results = [
        CostResult(DAY, 2 * DAY, "p", f"item {i}", None, a, "usd", Decimal("1e9"), "tokens")
        for i, a in enumerate(amounts)
    ]
    with store.transaction() as conn:
        writes.replace_costs(conn, DAY, 2 * DAY, results)
    (row,) = store.cost_totals(DAY, 2 * DAY)
    assert row["amount"] == sum(amounts)
    assert isinstance(row["amount"], Decimal)


@pytest.mark.slow
def test_a_process_killed_while_migrating_leaves_a_database_that_opens(tmp_path: Path) -> None:
    """SIGKILL at many points of a first start (imports, then the migrations): the schema is
    built whole or not at all, never half (each CREATE TABLE used to commit alone on SQLite)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    for i in range(16):
        url = f"sqlite:///{tmp_path / f'm{i}.db'}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "usage_tracker", "user", "list"],
            env={**os.environ, "DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.35 + i * 0.04)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        Store.open(url).close()  # raises "table … already exists" on a half-built schema


def test_stored_estimates_follow_the_prices_in_force(database_url: str) -> None:
    """Each row is estimated when written; opened with other prices (a PRICES_FILE edited, a
    new genai-prices), the store estimates every row again, once, and the version moves."""
    from usage_tracker.providers.prices import Override, Prices

    t, m = 100 * DAY, 1_000_000
    store = Store.open(database_url)
    with store.transaction() as conn:
        results = [_result(t, "house-model", m), _result(t + HOUR, "house-model", m)]
        writes.replace_usage(
            conn, "completions", t, t + 2 * HOUR, results, estimate=store.prices.estimate
        )
    [row] = store.folded_totals(t, t + DAY, ["estimated_usd", "unpriced_tokens"])["model"]
    assert (row["estimated_usd"], row["unpriced_tokens"]) == (0, 2 * (m + 1))
    before = store.data_version()
    store.close()

    house = Prices({"house-model": Override(Decimal(2), Decimal(1), Decimal(8))})
    store = Store.open(database_url, house)
    try:
        after = store.data_version()
        assert after > before
        # 1M input tokens at $2 and one output token at $8 per million, twice.
        expected = 2 * (Decimal(2) + Decimal(8) / m)
        for start, end in ((t, t + DAY), (t, t + HOUR + HOUR), (t - 40 * DAY, t + 40 * DAY)):
            [row] = store.folded_totals(start, end, ["estimated_usd", "unpriced_tokens"])["model"]
            assert (row["estimated_usd"], row["unpriced_tokens"]) == (expected, 0)
        assert store.reestimate() is False  # the same prices: nothing to do
        assert store.data_version() == after
    finally:
        store.close()


def test_the_rollup_answers_any_range_the_api_accepts(store: Store) -> None:
    """From 1970 to the last hour of year 9999 (what the API's bounds allow): whole months,
    edge days and hours, equal to the rows read directly."""
    t = 100 * DAY + 5 * HOUR
    with store.transaction() as conn:
        results = [_result(t, "m", 10), _result(t + 40 * DAY, "n", 7)]
        writes.replace_usage(
            conn, "completions", t, t + 41 * DAY, results, estimate=store.prices.estimate
        )
    last = 253402300798 - 253402300798 % HOUR + HOUR  # the API's last end_time, in hours
    for start, end in ((0, last), (t, t + 40 * DAY + HOUR), (t + HOUR, last)):
        folded = store.folded_totals(start, end, ["input_tokens"])["model"]
        rows = store.usage_totals(start, end, _with_connection("model"), metrics=["input_tokens"])
        assert folded == rows


def test_the_rollup_follows_rewrites_of_any_part_of_a_day(store: Store) -> None:
    """A re-synced range replaces what its days held in the folded blocks (not adds to it),
    whatever the other sources hold on those days; every range still reads as the rows do,
    every grouping read with the others and alone."""
    t = 200 * DAY
    first = [_result(t + h * HOUR, f"m{h % 3}", 10 + h, api_key_id=f"k{h % 4}") for h in range(72)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", t, t + 72 * HOUR, first, estimate=store.prices.estimate
        )
        other = UsageResult(
            "embeddings",
            t + 5 * HOUR,
            t + 6 * HOUR,
            tuple(None for _ in DIMENSIONS),
            {"input_tokens": 1000, "num_model_requests": 2},
        )
        writes.replace_usage(
            conn, "embeddings", t, t + DAY, [other], estimate=store.prices.estimate
        )
    again = [_result(t + h * HOUR, "m9", 1, api_key_id="k9") for h in range(30, 40)]
    with store.transaction() as conn:  # hours 30-50 again: ten rows now, none after hour 40
        writes.replace_usage(
            conn, "completions", t + 30 * HOUR, t + 50 * HOUR, again, estimate=store.prices.estimate
        )
    ranges = [
        (t, t + 3 * DAY),
        (t + 7 * HOUR, t + 45 * HOUR),
        (t - 9 * DAY, t + 9 * DAY),
        (t + 26 * HOUR, t + 27 * HOUR),
        (t + DAY, t + 2 * DAY),
    ]
    for start, end in ranges:
        folded = store.folded_totals(start, end, ["input_tokens", "num_model_requests"])
        for grouping, column in schema.FOLDED.items():
            rows = store.usage_totals(
                start, end, _with_connection(column), metrics=["input_tokens", "num_model_requests"]
            )
            assert folded[grouping] == rows, (grouping, start - t, end - t)
            alone = store.folded_totals(
                start, end, ["input_tokens", "num_model_requests"], [grouping]
            )
            assert alone == {grouping: rows}, (grouping, start - t, end - t)


def test_week_blocks_follow_rewrites_and_read_as_their_days(store: Store) -> None:
    """A week block (Monday to Monday, UTC) holds what its seven day blocks hold, through a
    rewrite of part of a week; a range's weeks read from them equal its days added up, with
    the partial weeks at its edges from the days."""
    from usage_tracker.store import folded

    monday = 2902 * DAY  # 1977-12-12, a Monday
    assert folded.period_start(monday, folded.WEEK) == monday
    hours = range(0, 24 * 24, 5)
    first = [_result(monday + h * HOUR, f"m{h % 3}", 10 + h, api_key_id=f"k{h % 4}") for h in hours]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", monday, monday + 24 * DAY, first, estimate=store.prices.estimate
        )
    again = [_result(monday + 9 * DAY + h * HOUR, "m9", 1, api_key_id="k9") for h in range(30)]
    with store.transaction() as conn:  # days 9-11 written again, in the middle of week two
        writes.replace_usage(
            conn,
            "completions",
            monday + 9 * DAY,
            monday + 12 * DAY,
            again,
            estimate=store.prices.estimate,
        )
    folded_ = schema.usage_folded
    with store.engine.connect() as conn:
        weeks = conn.execute(
            folded_.select()
            .where(folded_.c.hours == 7 * 24)
            .with_only_columns(
                folded_.c.start, folded_.c.grouping, folded_.c.value, folded_.c.input_tokens
            )
        ).all()
    by_day = store.folded_days(monday, monday + 28 * DAY, "api_key", ["input_tokens"])
    expected: dict[tuple[int, str], int] = {}
    for row in by_day:
        week = folded.period_start(row["day"], folded.WEEK)
        expected[week, row["api_key_id"]] = expected.get((week, row["api_key_id"]), 0)
        expected[week, row["api_key_id"]] += row["input_tokens"]
    stored = {(s, v): t for s, g, v, t in weeks if g == "api_key" and t}
    assert stored == expected
    assert {s for s, _ in stored} == {monday + w * 7 * DAY for w in range(4)}
    for start, end in (
        (monday, monday + 28 * DAY),
        (monday - 3 * DAY, monday + 26 * DAY + 5 * HOUR),
        (monday + 2 * DAY, monday + 13 * DAY),
    ):
        weekly = store.folded_days(start, end, "api_key", ["input_tokens"], per=folded.WEEK)
        summed: dict[tuple[int, str], int] = {}
        for row in store.folded_days(start, end, "api_key", ["input_tokens"]):
            key = (folded.period_start(row["day"], folded.WEEK), row["api_key_id"])
            summed[key] = summed.get(key, 0) + row["input_tokens"]
        assert {(r["day"], r["api_key_id"]): r["input_tokens"] for r in weekly} == summed


def test_upgrading_builds_the_week_blocks_from_the_days_stored(database_url: str) -> None:
    """0007 adds week blocks to a database that has day blocks only: the same as a write
    would have kept."""
    from alembic import command
    from alembic.config import Config

    from usage_tracker.store.db import MIGRATIONS

    monday = 2902 * DAY
    store = Store.open(database_url)
    rows = [_result(monday + h * HOUR, "m", h, api_key_id=f"k{h % 3}") for h in range(0, 400, 7)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", monday, monday + 17 * DAY, rows, estimate=store.prices.estimate
        )
    folded_ = schema.usage_folded
    weeks = folded_.select().where(folded_.c.hours == schema.WEEK_HOURS)
    with store.engine.connect() as conn:
        kept = sorted(map(tuple, conn.execute(weeks).all()))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for step in (command.downgrade, command.upgrade):
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            step(config, "0006" if step is command.downgrade else "head")
            if step is command.downgrade:
                week_starts = select(folded_.c.start).where(folded_.c.hours == schema.WEEK_HOURS)
                assert conn.execute(week_starts).all() == []
    with store.engine.connect() as conn:
        assert sorted(map(tuple, conn.execute(weeks).all())) == kept
    assert len({r[1] for r in kept}) == 3  # three weeks
    store.close()


def test_blocks_left_to_the_end_of_a_backfill_read_right_before_and_after(store: Store) -> None:
    """Pages written with the longer blocks deferred (a first backfill): every range reads as
    the rows do meanwhile (from six-hour blocks where blocks wait), and after they are summed
    once the blocks are what page-by-page upkeep would have made."""
    from usage_tracker.store import folded, folding

    monday = 2902 * DAY
    metrics = ["input_tokens", "num_model_requests"]
    pages = [(monday + d * DAY, monday + (d + 3) * DAY) for d in range(0, 30, 3)]
    for lo, hi in pages:
        rows = [
            _result(t, f"m{t % 5}", t % 97, api_key_id=f"k{t % 7}") for t in range(lo, hi, HOUR * 5)
        ]
        with store.transaction() as conn:
            writes.replace_usage(
                conn, "completions", lo, hi, rows, estimate=store.prices.estimate, defer_blocks=True
            )
    with store.engine.connect() as conn:
        assert folding.deferred(conn) == (monday, monday + 30 * DAY)
    ranges = [
        (monday, monday + 30 * DAY),
        (monday - 5 * DAY + 7 * HOUR, monday + 17 * DAY + 3 * HOUR),
        (monday + 8 * DAY, monday + 22 * DAY),
    ]

    def every_range_reads_as_the_rows() -> None:
        for start, end in ranges:
            totals = store.folded_totals(start, end, metrics)
            for grouping, column in schema.FOLDED.items():
                by = _with_connection(column)
                assert totals[grouping] == store.usage_totals(start, end, by, metrics=metrics)
            for per in (folded.DAY, folded.WEEK):
                read = store.folded_days(start, end, "api_key", metrics, per=per)
                expected: dict[tuple[int, str], int] = {}
                for row in store.usage_totals(start, end, ["day", "api_key_id"], metrics=metrics):
                    key = (folded.period_start(row["day"], per), row["api_key_id"])
                    expected[key] = expected.get(key, 0) + row["input_tokens"]
                assert {(r["day"], r["api_key_id"]): r["input_tokens"] for r in read} == {
                    k: v for k, v in expected.items() if v
                }
                # Keys read under names (a chart's people): each name's keys summed.
                named = {"k0": "zero and one", "k1": "zero and one", "k4": "four"}
                read = store.folded_days(start, end, "api_key", metrics, values=named, per=per)
                by_name: dict[tuple[int, str], int] = {}
                for (day, key), tokens in expected.items():
                    if key in named:
                        by_name[day, named[key]] = by_name.get((day, named[key]), 0) + tokens
                assert {(r["day"], r["api_key_id"]): r["input_tokens"] for r in read} == {
                    k: v for k, v in by_name.items() if v
                }

    every_range_reads_as_the_rows()
    table = schema.usage_folded
    longer = table.select().where(table.c.hours > schema.BLOCK_HOURS[0])
    with store.transaction() as conn:
        assert writes.settle_blocks(conn)
        assert folding.deferred(conn) is None
        settled = sorted(map(tuple, conn.execute(longer).all()))
        assert not writes.settle_blocks(conn)  # nothing waits any more
        folding.rebuild_blocks(conn, table, monday - 300 * DAY, monday + 300 * DAY)
        assert sorted(map(tuple, conn.execute(longer).all())) == settled
    every_range_reads_as_the_rows()


def test_the_end_of_a_backfill_gives_postgresql_the_statistics_of_its_rows(store: Store) -> None:
    """``Store.settle_blocks`` sums what a backfill left and then VACUUMs and ANALYZEs the
    tables it filled on PostgreSQL (outside the transaction, which VACUUM refuses): nothing
    waits afterwards, and the planner knows the rows."""
    from usage_tracker.store import folding

    day = 3000 * DAY
    rows = [_result(day + h * HOUR, f"m{h % 3}", 10 + h, api_key_id=f"k{h % 4}") for h in range(48)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn,
            "completions",
            day,
            day + 2 * DAY,
            rows,
            estimate=store.prices.estimate,
            defer_blocks=True,
        )
    assert store.settle_blocks()
    with store.engine.connect() as conn:
        assert folding.deferred(conn) is None
    assert not store.settle_blocks()  # nothing waits any more
    if store.backend == "postgresql":  # the tables with rows (no costs here)
        assert _analyzed(store) >= {"usage", "usage_folded"}


def _analyzed(store: Store) -> set[str]:
    """The tables PostgreSQL's planner has column statistics of (written by ANALYZE)."""
    with store.engine.connect() as conn:
        query = "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()"
        return {r[0] for r in conn.exec_driver_sql(query)}


def test_the_daily_table_goes_and_comes_back_summed_from_the_hours(database_url: str) -> None:
    """0019 drops usage_daily (every read of days sums the hours); going back to 0018 builds
    it again from the hours, day by day, exactly."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from usage_tracker.store.db import MIGRATIONS

    t = 300 * DAY
    store = Store.open(database_url)
    rows = [_result(t + h * HOUR, f"m{h % 2}", h + 1, api_key_id=f"k{h % 3}") for h in range(60)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", t, t + 3 * DAY, rows, estimate=store.prices.estimate
        )
    before = store.usage_totals(t, t + 3 * DAY, ["day", "api_key_id", "model"])
    assert "usage_daily" not in inspect(store.engine).get_table_names()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0018")
        daily = conn.execute(
            text(
                "SELECT day, api_key_id, model, SUM(input_tokens) FROM usage_daily "
                "GROUP BY day, api_key_id, model ORDER BY day, api_key_id, model"
            )
        ).all()
    expected = sorted((r["day"], r["api_key_id"], r["model"], r["input_tokens"]) for r in before)
    assert [tuple(int(v) if i in (0, 3) else v for i, v in enumerate(r)) for r in daily] == expected
    assert len(daily) == 3 * 3 * 2  # three days of three keys and two models
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert "usage_daily" not in inspect(store.engine).get_table_names()
    assert store.usage_totals(t, t + 3 * DAY, ["day", "api_key_id", "model"]) == before
    store.close()


def test_a_snapshot_reads_what_the_store_reads(store: Store) -> None:
    """Reports computed together read through a snapshot (one connection, each range's folded
    totals and billed costs read once): every read answers what the store's own would, whether
    a wider read of the range came before it or a narrower one (then it is read again)."""
    from usage_tracker.store.folded import SUMMED

    t = 300 * DAY
    # Tokens of zero in some rows: a read of tokens alone leaves those keys out, and a read
    # of every metric keeps them (they made requests).
    rows = [_result(t + h * HOUR, f"m{h % 3}", h % 5, api_key_id=f"k{h % 7}") for h in range(90)]
    rows += [_result(t + h * HOUR, "m0", 0, api_key_id="idle") for h in range(6, 80, 9)]
    costs = [
        CostResult(
            t + d * DAY,
            t + (d + 1) * DAY,
            "p",
            f"m{d % 3}, input",
            f"k{d}",
            Decimal(d),
            "usd",
            None,
            None,
        )
        for d in range(4)
    ]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", t, t + 4 * DAY, rows, estimate=store.prices.estimate
        )
        writes.replace_costs(conn, t, t + 4 * DAY, costs)
    every, tokens = list(SUMMED), ["input_tokens"]
    start, end = t + 5 * HOUR, t + 3 * DAY + 7 * HOUR
    with store.snapshot() as snapshot:
        reads = [
            (start, end, every, list(schema.FOLDED)),
            (start, end, tokens, ["api_key", "model"]),  # from the first read
            (start, end, ["num_model_requests"], ["api_key"]),
            (t, end, tokens, ["api_key"]),  # another range: read
            (t, end, every, ["api_key", "source"]),  # wider than what was read: read again
            (t, end, tokens, ["source"]),
        ]
        for lo, hi, metrics, groupings in reads:
            expected = store.folded_totals(lo, hi, metrics, groupings)
            assert snapshot.folded_totals(lo, hi, metrics, groupings) == expected
            assert any(expected[g] for g in groupings)

        def keys(metrics: list[str]) -> set[str]:
            read = snapshot.folded_totals(start, end, metrics, ["api_key"])["api_key"]
            return {r["api_key_id"] for r in read}

        assert keys(["num_model_requests"]) - keys(tokens) == {"idle"}
        for lo, hi in ((start, end), (t, t + DAY), (t + HOUR, t + 2 * DAY - HOUR)):
            assert snapshot.folded_costs(lo, hi) == store.folded_costs(lo, hi)
        first = snapshot.folded_costs(start, end)
        first["api_key"].clear()  # what a caller does with its rows stays with it
        assert snapshot.folded_costs(start, end) == store.folded_costs(start, end)


def test_the_days_of_a_few_values_are_read_through_the_value_index(tmp_path: Path) -> None:
    """SQLite with no statistics takes the primary key for a chart's days of a few values, and
    reads every grouping's blocks of the range: the read names the value index itself, which
    holds the tokens a chart counts (nothing is read from the table)."""
    from sqlalchemy import event

    store = Store.open(f"sqlite:///{tmp_path / 'plans.db'}")
    start = 2902 * DAY
    rows = [_result(start + h * HOUR, "m", 5, api_key_id=f"k{h % 3}") for h in range(24 * 20)]
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", start, start + 20 * DAY, rows, estimate=store.prices.estimate
        )
    plans: list[str] = []

    def explain(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "by_value" in statement:
            raw = store.engine.raw_connection()
            try:
                found = raw.cursor().execute(f"EXPLAIN QUERY PLAN {statement}", params)
                plans.append(" ".join(str(r[3]) for r in found.fetchall()))
            finally:
                raw.close()

    event.listen(store.engine, "before_cursor_execute", explain)
    try:
        for per in (DAY, 7 * DAY):
            days = store.folded_days(start, start + 20 * DAY, "api_key", ["input_tokens"], per=per)
            assert sum(r["input_tokens"] for r in days) == 5 * 24 * 20
            named = {"k0": "zero", "k1": "one"}
            days = store.folded_days(
                start, start + 20 * DAY, "api_key", ["input_tokens"], values=named, per=per
            )
            assert sum(r["input_tokens"] for r in days) == 5 * 16 * 20
    finally:
        event.remove(store.engine, "before_cursor_execute", explain)
        store.close()
    assert len(plans) >= 4
    assert all("USING COVERING INDEX ix_usage_folded_value" in plan for plan in plans), plans

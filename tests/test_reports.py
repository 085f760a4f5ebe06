"""Reports over a synced store equal the simulator's truth, for every grouping, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from usage_tracker import reports, simulator
from usage_tracker.people.names import KeyMappings
from usage_tracker.people.scope import Scope
from usage_tracker.providers.openai import AdminClient
from usage_tracker.providers.openai.pools import NOT_ELIGIBLE, UNCLASSIFIED, load_pool_table
from usage_tracker.providers.records import DIMENSIONS
from usage_tracker.store import Store
from usage_tracker.sync import sync_once
from usage_tracker.web.serving import BackgroundServer

from .conftest import ADMIN_KEY, FAST_RETRY, NOW, fresh_database

DAY, HOUR = 86400, 3600
ORG_GROUPS = {"api_key": "api_key_id", "user": "user_id", "project": "project_id", "model": "model"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, simulator.Organization]]:
    sim = simulator.build(seed=7, days=90, clock=lambda: NOW)
    with fresh_database(request, request.param, tmp_path_factory.mktemp("db")) as url:
        store = Store.open(url)
        with (
            BackgroundServer(sim) as server,
            AdminClient(ADMIN_KEY, server.url + "/v1", retry=FAST_RETRY) as client,
        ):
            assert sync_once(store, client, now=NOW).errors == []
        yield store, sim.org
        store.close()


def _truth(
    org: simulator.Organization, start: int, end: int, dims: list[str], bucket: str | None = None
) -> dict[tuple[object, ...], int]:
    """input + output tokens per group, over every source that has them."""
    totals: dict[tuple[object, ...], int] = defaultdict(int)
    for event in org.events(start, end):
        metrics = dict(event.metrics)
        tokens = metrics.get("input_tokens", 0) + metrics.get("output_tokens", 0)
        if not tokens:
            continue
        key = tuple(
            event.source if d == "source" else event.dims[DIMENSIONS.index(d)] for d in dims
        )
        if bucket == "week":  # from the Monday of its week (UTC), by the calendar
            day = dt.datetime.fromtimestamp(event.ts, dt.UTC).date()
            monday = dt.datetime.combine(day - dt.timedelta(days=day.weekday()), dt.time())
            key = (int(monday.replace(tzinfo=dt.UTC).timestamp()), *key)
        elif bucket:
            step = DAY if bucket == "day" else HOUR
            key = (event.ts - event.ts % step, *key)
        totals[key] += tokens
    return dict(totals)


RANGES = [
    pytest.param(NOW - NOW % DAY - 90 * DAY, NOW - NOW % HOUR + HOUR, id="90 days"),
    pytest.param(
        NOW - NOW % HOUR - 7 * DAY - 5 * HOUR, NOW - NOW % HOUR - 3 * HOUR, id="ragged 7 days"
    ),
    pytest.param(NOW - NOW % DAY, NOW - NOW % HOUR + HOUR, id="today"),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("grouping", [*ORG_GROUPS, "source"])
def test_totals_by_each_grouping_equal_the_truth(
    synced: tuple[Store, simulator.Organization], grouping: str, start: int, end: int
) -> None:
    store, org = synced
    rows = reports.usage_totals(store, reports.load_names(store), start, end, [grouping])
    got = {(r[grouping],): r["tokens"] for r in rows if r["tokens"]}
    dim = ORG_GROUPS.get(grouping, "source")
    assert got == _truth(org, start, end, [dim])


@pytest.mark.parametrize("bucket", ["day", "hour"])
def test_totals_by_day_and_hour_equal_the_truth(
    synced: tuple[Store, simulator.Organization], bucket: str
) -> None:
    store, org = synced
    start, end = NOW - NOW % HOUR - 10 * DAY - 7 * HOUR, NOW - NOW % HOUR + HOUR
    rows = reports.usage_totals(store, reports.load_names(store), start, end, [bucket, "model"])
    got = {(r[bucket], r["model"]): r["tokens"] for r in rows if r["tokens"]}
    assert got == _truth(org, start, end, ["model"], bucket)
    assert [r[bucket] for r in rows] == sorted(r[bucket] for r in rows)


MONTHS = [
    *RANGES,
    pytest.param(NOW - NOW % HOUR - 75 * DAY - 5 * HOUR, NOW - NOW % HOUR - DAY, id="ragged 75"),
    pytest.param(NOW - NOW % DAY - 61 * DAY, NOW - NOW % DAY - 3 * DAY, id="whole days"),
]


@pytest.mark.parametrize(("start", "end"), MONTHS)
def test_the_summary_from_the_rollup_equals_the_truth_and_the_rows(
    synced: tuple[Store, simulator.Organization], start: int, end: int
) -> None:
    """Everyone's summary reads the per-grouping rollup (whole months, days, edge hours); a
    filtered one reads the rows. Both equal the truth, estimates and all."""
    store, org = synced
    names = reports.load_names(store)
    folded = reports.summary(store, names, start, end)
    every_source = {"source": sorted({e.source for e in org.events(start, end)})}
    from_rows = reports.summary(store, names, start, end, where=every_source)
    assert folded["by"] == from_rows["by"]
    assert folded["totals"] == from_rows["totals"]
    assert folded["estimated_usd"] == from_rows["estimated_usd"]
    assert folded["unpriced_models"] == from_rows["unpriced_models"]
    assert folded["billed_usd"] == from_rows["billed_usd"]
    assert folded["billed_by_project"] == from_rows["billed_by_project"]
    for grouping in [*ORG_GROUPS, "source"]:
        got = {(r[grouping],): r["tokens"] for r in folded["by"][grouping] if r["tokens"]}
        assert got == _truth(org, start, end, [ORG_GROUPS.get(grouping, "source")]), grouping
    assert folded["totals"]["tokens"] == sum(_truth(org, start, end, []).values())


WEEKS = [  # past three months the chart has a bar per week
    pytest.param(NOW - NOW % HOUR - 120 * DAY - 5 * HOUR, NOW - NOW % HOUR + HOUR, id="weeks"),
    pytest.param(NOW - NOW % DAY - 100 * DAY, NOW - NOW % DAY - 9 * DAY, id="whole weeks"),
]


HOURS = [  # up to two days the chart has a bar per hour
    pytest.param(NOW - NOW % HOUR - 30 * HOUR, NOW - NOW % HOUR + HOUR, id="hours"),
    pytest.param(NOW - NOW % DAY - 2 * DAY, NOW - NOW % DAY, id="two days"),
]


@pytest.mark.parametrize(("start", "end"), [*HOURS, *MONTHS, *WEEKS])
@pytest.mark.parametrize("stack", ["person", "model", "team", "api_key"])
def test_the_chart_from_the_rollup_equals_the_chart_from_the_rows(
    synced: tuple[Store, simulator.Organization], start: int, end: int, stack: str
) -> None:
    store, org = synced
    names = reports.load_names(store)
    folded = reports.usage_over_time(store, names, start, end, stack)
    every_source = {"source": sorted({e.source for e in org.events(start, end)})}
    from_rows = reports.usage_over_time(store, names, start, end, stack, where=every_source)
    assert folded == from_rows
    per_bucket = [
        sum(s[i] for s in folded["series"].values()) for i in range(len(folded["labels"]))
    ]
    truth = _truth(org, start, end, [], folded["bucket"])
    assert per_bucket == [truth.get((at,), 0) for at in folded["labels"]]
    assert set(truth) <= {(at,) for at in folded["labels"]}  # no usage left out
    if end - start > 92 * DAY:
        assert folded["bucket"] == "week"
        mondays = [dt.datetime.fromtimestamp(at, dt.UTC).strftime("%a") for at in folded["labels"]]
        assert set(mondays) == {"Mon"}


def test_the_reconciliation_from_the_rollup_equals_it_from_the_rows(
    synced: tuple[Store, simulator.Organization],
) -> None:
    store, org = synced
    start, end = NOW - NOW % DAY - 40 * DAY, NOW - NOW % DAY
    everyone = reports.reconciliation(store, start, end)
    every_key = Scope(frozenset(k.id for k in org.keys) | {""})
    assert reports.reconciliation(store, start, end, scope=every_key)["days"] == everyone["days"]
    assert any(r["estimated"] for r in everyone["days"])


def test_people_come_from_the_mapping_file_over_openais_names(
    synced: tuple[Store, simulator.Organization], tmp_path: Path
) -> None:
    store, org = synced
    jane = [k for k in org.keys if k.owner_name == "Jane Smith"]
    service = next(k for k in org.keys if k.owner_type == "service_account")
    mapping_file = tmp_path / "api_key_mappings.json"
    mapping_file.write_text(json.dumps({service.id: "Data Team", jane[0].id: "Jane S."}))
    names = reports.load_names(store, KeyMappings(mapping_file).current())
    start, end = org.start, NOW - NOW % HOUR + HOUR
    rows = {
        r["person"]: r["tokens"] for r in reports.usage_totals(store, names, start, end, ["person"])
    }
    per_key = _truth(org, start, end, ["api_key_id"])
    assert rows["Data Team"] == per_key[(service.id,)]
    assert rows["Jane S."] == per_key[(jane[0].id,)]
    assert rows["Jane Smith"] == sum(per_key.get((k.id,), 0) for k in jane[1:])
    assert service.name not in rows
    assert sum(rows.values()) == sum(per_key.values())


def test_a_deleted_key_keeps_its_owners_name(synced: tuple[Store, simulator.Organization]) -> None:
    store, org = synced
    deleted = next(k for k in org.keys if k.deleted_at)
    names = reports.load_names(store)
    # OpenAI no longer lists the key: its usage is shown under its id, never lost.
    rows = reports.usage_totals(store, names, org.start, NOW - NOW % HOUR, ["api_key"])
    assert any(r["api_key"] == deleted.id and r["tokens"] > 0 for r in rows)


def test_unknown_groupings_and_ragged_ranges_are_refused(
    synced: tuple[Store, simulator.Organization],
) -> None:
    store, _ = synced
    names = reports.load_names(store)
    with pytest.raises(reports.ReportError, match="colour"):
        reports.usage_totals(store, names, 0, HOUR, ["colour"])
    with pytest.raises(reports.ReportError, match="whole UTC hours"):
        reports.usage_totals(store, names, 17, HOUR)


def test_costs_equal_the_billed_truth(synced: tuple[Store, simulator.Organization]) -> None:
    store, org = synced
    names = reports.load_names(store)
    start, end = org.start, NOW - NOW % DAY + DAY
    rows = reports.cost_totals(store, names, start, end, ["project_id"])
    truth = org.cost_truth(start, end, ["project_id"])
    assert {r["project_id"] or None: r["amount"] for r in rows} == {
        k[0]: v for k, v in truth.items()
    }
    assert [r["amount"] for r in rows] == sorted((r["amount"] for r in rows), reverse=True)


@pytest.mark.parametrize("tz", ["UTC", "America/Los_Angeles", "Asia/Tokyo"])
def test_pools_count_the_utc_day_in_any_local_timezone(
    synced: tuple[Store, simulator.Organization], tz: str
) -> None:
    store, org = synced
    table = load_pool_table()
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        report = reports.pool_usage(store, reports.load_names(store), table, NOW)
    finally:
        os.environ.pop("TZ") if old is None else os.environ.__setitem__("TZ", old)
        time.tzset()
    expected: dict[str, int] = defaultdict(int)
    today = _truth(org, NOW - NOW % DAY, NOW, ["source", "model"])
    for (source, model), tokens in today.items():
        if source != "completions":  # the pools count completions (decisions: see the README)
            continue
        pool = table.classify(str(model))
        if pool not in (NOT_ELIGIBLE, UNCLASSIFIED) and model not in (
            "text-embedding-3-small",
            "text-embedding-3-large",
            "omni-moderation-latest",
        ):
            expected[pool] += tokens
    assert report.day_start == NOW - NOW % DAY
    assert {p: s.used for p, s in report.pools.items()} == {
        "large": expected["large"],
        "small": expected["small"],
    }
    assert report.pools["small"].limit == 2_500_000
    assert report.pools["large"].limit == 250_000


def test_pools_never_count_fine_tuned_or_pro_models(
    synced: tuple[Store, simulator.Organization],
) -> None:
    store, _ = synced
    report = reports.pool_usage(store, reports.load_names(store), load_pool_table(), NOW)
    counted = {m for s in report.pools.values() for m in s.models}
    assert not any(m.startswith("ft:") or "-pro" in m for m in counted)
    assert any(m.startswith("ft:") for m in report.not_eligible)
    assert report.unclassified == {}
    small = report.pools["small"]
    assert sum(small.models.values()) == small.used == sum(small.people.values())
    assert 0 < small.reported_complimentary < small.used


def test_pool_limits_follow_the_usage_tier_and_burn_rate_projects_exhaustion(
    synced: tuple[Store, simulator.Organization],
) -> None:
    store, _ = synced
    report = reports.pool_usage(
        store, reports.load_names(store), load_pool_table(), NOW, usage_tier="3-5"
    )
    large = report.pools["large"]
    assert (large.limit, report.pools["small"].limit) == (1_000_000, 10_000_000)
    elapsed = NOW - NOW % DAY
    assert large.burn_per_hour == pytest.approx(large.used * HOUR / (NOW - elapsed))
    if large.exhausted_at is not None:
        assert NOW <= large.exhausted_at < elapsed + DAY


def test_only_sharing_projects_count_toward_the_pools(
    synced: tuple[Store, simulator.Organization],
) -> None:
    store, org = synced
    names = reports.load_names(store)
    everything = reports.pool_usage(store, names, load_pool_table(), NOW)
    one = next(iter(org.projects))
    only_one = reports.pool_usage(store, names, load_pool_table(), NOW, sharing_projects=[one])
    assert only_one.pools["small"].used < everything.pools["small"].used


def test_reported_free_is_every_incentivized_row_and_disagreements_are_listed(
    synced: tuple[Store, simulator.Organization], tmp_path: Path
) -> None:
    """OpenAI's word (the incentivized-tier rows) against the table's: a table that says
    gpt-4.1-mini is not eligible still shows what OpenAI gave free for it, as a disagreement."""
    store, org = synced
    names = reports.load_names(store)
    day = NOW - NOW % DAY
    truth = org.truth("completions", day, NOW, ["model", "service_tier", "project_id"])
    free: dict[str, int] = defaultdict(int)
    for (model, tier, _project), m in truth.items():
        if tier == "incentivized-tier":
            free[str(model)] += m["input_tokens"] + m["output_tokens"]
    assert free["gpt-4.1-mini"] > 0

    stale = tmp_path / "tiers.json"
    stale.write_text('{"rules": [{"pattern": "^gpt-4\\\\.1-mini", "pool": null}]}')
    report = reports.pool_usage(store, names, load_pool_table(stale), NOW)
    assert report.reported_free == dict(free)
    assert report.disagreements == [
        {"model": "gpt-4.1-mini", "table": NOT_ELIGIBLE, "reported_free": free["gpt-4.1-mini"]}
    ]
    assert reports.pool_usage(store, names, load_pool_table(), NOW).disagreements == []

    one = next(iter(org.projects))
    outside: dict[str, int] = defaultdict(int)
    for (model, tier, project), m in truth.items():
        if tier == "incentivized-tier" and project != one:
            outside[str(model)] += m["input_tokens"] + m["output_tokens"]
    narrowed = reports.pool_usage(store, names, load_pool_table(), NOW, sharing_projects=[one])
    assert {
        d["model"]: d["reported_free"]
        for d in narrowed.disagreements
        if d["table"] == "project not in SHARING_PROJECTS"
    } == dict(outside)


def test_an_unknown_model_is_unclassified_not_counted(tmp_path: Path) -> None:
    table = load_pool_table()
    assert table.classify("gpt-7-turbo") == UNCLASSIFIED
    assert table.classify("gpt-4o-mini-2024-07-18") == "small"
    assert table.classify("gpt-5.1-mini") == UNCLASSIFIED
    assert table.classify("o3-2025-04-16") == "large"
    assert table.classify("gpt-4o-mini-tts") == NOT_ELIGIBLE
    override = tmp_path / "tiers.json"
    override.write_text('{"rules": [{"pattern": "^gpt-7", "pool": "large"}]}')
    assert load_pool_table(override).classify("gpt-7-turbo") == "large"
    override.write_text('{"models": {"gpt-6.2-sol": "large", "gpt-5.6-terra": null}}')
    placed = load_pool_table(override)
    assert placed.classify("gpt-6.2-sol") == "large"
    assert placed.classify("gpt-5.6-terra") == NOT_ELIGIBLE  # the user's file wins
    assert placed.classify("gpt-5.6-luna") == "small"


def test_a_malformed_pool_file_names_the_line_and_column(tmp_path: Path) -> None:
    from usage_tracker.providers.openai.pools import PoolTableError

    bad = tmp_path / "tiers.json"
    bad.write_text('{\n  "rules": [\n    {"pattern": "x", "pool": "large",}\n  ]\n}\n')
    with pytest.raises(PoolTableError, match=r"tiers\.json, line 3, column 38"):
        load_pool_table(bad)


@pytest.mark.parametrize(
    ("model", "pool"),
    [
        # As OpenAI's help article (10306912) lists them, captured 2026-09-28:
        ("gpt-5.6-terra", "small"),
        ("gpt-5.6-luna", "small"),
        ("gpt-5.6-sol", "large"),
        ("gpt-6-astra", "large"),
        ("gpt-6-sol", "large"),
        ("gpt-6-luna", "large"),
        ("gpt-5-chat-latest", "large"),
        ("gpt-5.1-codex-mini", "small"),
        ("gpt-5.1-codex", "large"),
        ("gpt-5-codex", "large"),
        ("gpt-5.4-mini-2026-03-17", "small"),
        ("gpt-4.1-mini-2025-04-14", "small"),
        ("codex-mini-latest", "small"),
        # … a listed snapshot's undated alias, and a listed bare name's snapshot:
        ("gpt-5.4", "large"),
        ("gpt-5-mini", "small"),
        ("gpt-5-nano", "small"),
        ("o4-mini", "small"),
        ("gpt-5.1", "large"),
        ("o3", "large"),
        ("gpt-6-sol-2026-07-01", "large"),
        # … what it does not list:
        ("gpt-5.3-codex", NOT_ELIGIBLE),
        ("gpt-5.3-codex-spark", NOT_ELIGIBLE),
        ("gpt-5-search-api", NOT_ELIGIBLE),
        ("o3-mini", NOT_ELIGIBLE),
        ("gpt-5.2-codex", NOT_ELIGIBLE),
        ("gpt-5.1-codex-max", NOT_ELIGIBLE),
        ("o3-deep-research", NOT_ELIGIBLE),
        ("gpt-4o-search-preview", NOT_ELIGIBLE),
        ("gpt-5-pro", NOT_ELIGIBLE),
        ("gpt-realtime-1.5", NOT_ELIGIBLE),
        # … and what no list names yet: unclassified, never counted in a pool.
        ("gpt-6.2-sol", UNCLASSIFIED),
        ("gpt-6.1-sol", UNCLASSIFIED),
        ("gpt-5.1-mini", UNCLASSIFIED),
        ("gpt-5-codex-mini", UNCLASSIFIED),
        ("chatgpt-4o-latest", UNCLASSIFIED),
    ],
)
def test_the_shipped_table_classifies_as_the_help_article_does(model: str, pool: str) -> None:
    assert load_pool_table().classify(model) == pool


def test_200k_tokens_of_gpt_5_1_codex_mini_fill_the_small_pool_not_the_large(
    database_url: str,
) -> None:
    """The audit's case: the old table put gpt-5.1-codex-mini in the large pool and showed it
    at 128 % "exhausted" while the small pool was at 8 %."""
    from usage_tracker.providers.records import UsageResult
    from usage_tracker.store import writes

    day = NOW - NOW % DAY
    values = {"model": "gpt-5.1-codex-mini", "api_key_id": "key_1", "service_tier": "default"}
    row = UsageResult(
        "completions",
        day + HOUR,
        day + 2 * HOUR,
        tuple(values.get(d) for d in DIMENSIONS),
        {"input_tokens": 150_000, "output_tokens": 50_000, "num_model_requests": 40},
    )
    store = Store.open(database_url)
    try:
        with store.transaction() as conn:
            writes.replace_usage(
                conn,
                "completions",
                day + HOUR,
                day + 2 * HOUR,
                [row],
                estimate=store.prices.estimate,
            )
        report = reports.pool_usage(store, reports.load_names(store), load_pool_table(), NOW)
    finally:
        store.close()
    assert report.pools["small"].used == 200_000
    assert report.pools["small"].percent == pytest.approx(8.0)
    assert report.pools["large"].used == 0


def _store_today(database_url: str, rows: list[tuple[str, str, str, int]]) -> Store:
    """A store holding, in today's second hour, (model, key, service tier, tokens) rows."""
    from usage_tracker.providers.records import UsageResult
    from usage_tracker.store import writes

    day = NOW - NOW % DAY
    results = []
    for model, key, tier, tokens in rows:
        values = {"model": model, "api_key_id": key, "service_tier": tier, "project_id": "proj_1"}
        metrics = {"input_tokens": tokens, "output_tokens": 0, "num_model_requests": 1}
        dims = tuple(values.get(d) for d in DIMENSIONS)
        results.append(UsageResult("completions", day + HOUR, day + 2 * HOUR, dims, metrics))
    store = Store.open(database_url)
    with store.transaction() as conn:
        writes.replace_usage(
            conn, "completions", day + HOUR, day + 2 * HOUR, results, estimate=store.prices.estimate
        )
    return store


def test_the_pools_follow_openais_lists_not_broad_patterns(database_url: str) -> None:
    """The outside check's case: gpt-5.6-terra was counted in the large pool and unlisted
    gpt-5.3-codex and gpt-5-search-api too, so the large pool showed 100 % "exhausted" where
    OpenAI's own free marking put it at 52 %."""
    store = _store_today(
        database_url,
        [
            ("gpt-5-2025-08-07", "key_1", "incentivized-tier", 130_000),  # large: 52 %
            ("gpt-5.6-terra", "key_1", "incentivized-tier", 60_000),  # small
            ("gpt-5.3-codex", "key_1", "default", 40_000),  # not listed
            ("gpt-5-search-api", "key_1", "default", 30_000),  # not listed
            ("gpt-6.2-sol", "key_1", "incentivized-tier", 9_000),  # free, group unknown
            ("gpt-6.2-sol", "key_1", "default", 1_000),
        ],
    )
    try:
        report = reports.pool_usage(store, reports.load_names(store), load_pool_table(), NOW)
    finally:
        store.close()
    assert report.table_as_of == "2026-09-28"
    assert report.pools["large"].used == 130_000
    assert report.pools["large"].percent == pytest.approx(52.0)
    assert report.pools["small"].used == 60_000
    assert report.not_eligible == {"gpt-5.3-codex": 40_000, "gpt-5-search-api": 30_000}
    assert report.unclassified == {"gpt-6.2-sol": 10_000}
    assert report.free_group_unknown == {"gpt-6.2-sol": 9_000}
    assert report.disagreements == []


def test_a_member_sees_the_pool_totals_and_their_own_share_only(database_url: str) -> None:
    from usage_tracker.people.scope import Scope

    store = _store_today(
        database_url,
        [
            ("gpt-5-mini", "key_mine", "default", 1_000),
            ("gpt-4.1-mini", "key_theirs", "default", 7_000),
            ("gpt-7-secret", "key_theirs", "incentivized-tier", 5_000),
            ("o1-pro", "key_theirs", "default", 3_000),
        ],
    )
    try:
        names = reports.load_names(store)
        mine = reports.pool_usage(
            store, names, load_pool_table(), NOW, scope=Scope(frozenset({"key_mine"}))
        )
    finally:
        store.close()
    assert mine.pools["small"].used == 8_000  # the organization's pool
    assert mine.pools["small"].models == {"gpt-5-mini": 1_000}  # only their own models
    assert mine.pools["small"].people == {"key_mine": 1_000, reports.EVERYONE_ELSE: 7_000}
    assert mine.unclassified == {}
    assert mine.not_eligible == {}
    assert mine.reported_free == {}
    assert mine.free_group_unknown == {}


def test_the_estimate_and_the_bill_agree_per_model_within_one_percent(
    synced: tuple[Store, simulator.Organization],
) -> None:
    """The simulator bills as OpenAI does (realtime audio at its own rate, Flex and Batch at
    half, Priority at its price, line items per modality): list prices must come to the same
    per model. Before, gpt-realtime was estimated at 3x its bill."""
    store, _org = synced
    names = reports.load_names(store)
    end = NOW - NOW % DAY
    summary = reports.summary(store, names, end - 60 * DAY, end)
    compared = 0
    for model in summary["by"]["model"]:
        billed, estimated = model["billed_cost"], model["estimated_cost"]
        if not billed or estimated is None or model["model"] in (None, ""):
            continue
        compared += 1
        # Within 1 %, or the half cent the estimate is rounded to.
        tolerance = max(Decimal("0.01") * billed, Decimal("0.005"))
        assert abs(estimated - billed) <= tolerance, model["model"]
    assert compared >= 15
    line_items = {r["line_item"] for r in store.cost_totals(end - 60 * DAY, end, ["line_item"])}
    assert "realtime api | gpt-realtime, audio, input" in line_items
    billed_models = {r["model"] for r in summary["by"]["model"] if r["billed_cost"]}
    assert "gpt-realtime" in billed_models
    assert "ft:gpt-4o-mini-2024-07-18:acme::Bx7kQ2" in billed_models
    assert not any("|" in str(m) or str(m).startswith("ft-") for m in billed_models)

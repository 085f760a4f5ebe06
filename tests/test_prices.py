"""Estimated cost at list prices (genai-prices), for the cases the issue lists, against OpenAI's
published prices as of 2026-11 (USD per 1M tokens, quoted in each case)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_tracker.providers.prices import Prices, PricesFileError

AT = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
M = 1_000_000


def row(model: str, requests: int = 1000, **counters: object) -> dict[str, object]:
    return {
        "model": model,
        "service_tier": "default",
        "batch": "false",
        "input_tokens": M,
        "output_tokens": M,
        "input_cached_tokens": 0,
        "num_model_requests": requests,
        **counters,
    }


@pytest.mark.parametrize(
    ("case", "usage", "list_price"),
    [
        # gpt-4.1 via the Batch API: $1 in + $4 out (half of $2 + $8).
        ("batch", row("gpt-4.1", batch="true"), Decimal("5")),
        # o3 on the flex tier: $1 in + $4 out (standard: $2 + $8).
        ("flex", row("o3", service_tier="flex"), Decimal("5")),
        # gpt-5 on the priority tier: $2.50 in + $20 out (standard: $1.25 + $10).
        ("priority", row("gpt-5", service_tier="priority"), Decimal("22.50")),
        # The dated snapshot has its own price: gpt-4o-2024-05-13 $5 + $15 (gpt-4o: $2.50 + $10).
        ("dated snapshot", row("gpt-4o-2024-05-13"), Decimal("20")),
        # gpt-realtime audio: $32 in + $64 out (text: $4 + $16).
        (
            "audio",
            row("gpt-realtime", input_audio_tokens=M, output_audio_tokens=M),
            Decimal("96"),
        ),
        # Newer models the hand-kept table lacked: gpt-5.4 at $2.50 + $15 (base context).
        ("gpt-5.4 over many requests", row("gpt-5.4"), Decimal("17.50")),
        # Cached input: gpt-4.1 $0.50 per 1M cached (of $2), output $8.
        ("cached input", row("gpt-4.1", input_cached_tokens=M), Decimal("8.50")),
    ],
)
def test_each_case_is_priced_at_its_list_price(
    case: str, usage: dict[str, object], list_price: Decimal
) -> None:
    assert Prices().estimate(usage, AT) == list_price, case


def test_a_row_is_priced_by_its_average_request_not_as_one_huge_request() -> None:
    """1M in + 1M out of gpt-5.4: one request that large pays the long-context rate ($27.50);
    the same tokens over a thousand requests do not ($17.50)."""
    assert Prices().estimate(row("gpt-5.4", requests=1), AT) == Decimal("27.50")
    assert Prices().estimate(row("gpt-5.4", requests=1000), AT) == Decimal("17.50")


def test_cache_writes_are_priced_apart_from_plain_input() -> None:
    """Models with a cache-write rate (gpt-6-sol in genai-prices' data) charge it on the
    written tokens instead of the plain input rate."""
    plain = Prices().estimate(row("gpt-6-sol", output_tokens=0), AT)
    written = Prices().estimate(row("gpt-6-sol", output_tokens=0, input_cache_write_tokens=M), AT)
    assert plain is not None
    assert written is not None
    assert written != plain


def test_an_unknown_model_is_unpriced_never_zero() -> None:
    assert Prices().estimate(row("gpt-from-the-future-9"), AT) is None


def test_complimentary_traffic_is_free() -> None:
    assert Prices().estimate(row("gpt-4.1", service_tier="incentivized-tier"), AT) == 0


def test_prices_file_adds_and_overrides_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "models": {
                    "gpt-from-the-future-9": {"input": 1, "cached_input": 0.5, "output": 3},
                    "gpt-4.1": {"input": 10, "output": 10},
                }
            }
        )
    )
    prices = Prices.load(path)
    assert prices.estimate(row("gpt-from-the-future-9", input_cached_tokens=M), AT) == Decimal(
        "3.5"
    )
    assert prices.estimate(row("gpt-4.1"), AT) == Decimal("20")


def test_a_malformed_prices_file_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"models": {\n  "x": {"input": 1,}\n}}')
    with pytest.raises(PricesFileError, match=r"PRICES_FILE prices.json, line 2, column"):
        Prices.load(path)
    path.write_text('{"models": {"x": {"input": 1}}}')
    with pytest.raises(PricesFileError, match="'x' needs"):
        Prices.load(path)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(
        ["gpt-5", "gpt-4.1-mini", "gpt-realtime", "gpt-4o-2024-05-13", "o3", "gpt-5.4", "gpt-4.1"]
    ),
    tier=st.sampled_from(["default", "flex", "priority"]),
    batch=st.sampled_from(["true", "false"]),
    requests=st.integers(1, 5000),
    day=st.integers(0, 400),
    counts=st.tuples(*(st.integers(0, 3_000_000) for _ in range(6))),
)
def test_the_fast_path_gives_the_librarys_price_of_n_average_requests(
    model: str, tier: str, batch: str, requests: int, day: int, counts: tuple[int, ...]
) -> None:
    """A model priced linearly is priced from per-token rates worked out once; the sum must be
    the library's own price of the row's average request times its request count."""
    from usage_tracker.providers import prices as module

    uncached, cached_text, audio_uncached, cached_audio, write, output = counts
    out_audio = output // 3
    row = {
        "model": model,
        "service_tier": tier,
        "batch": batch,
        "input_tokens": uncached + cached_text + audio_uncached + cached_audio + write,
        "input_cached_tokens": cached_text + cached_audio,
        "input_cache_write_tokens": write,
        "input_audio_tokens": audio_uncached + cached_audio,
        "input_cached_audio_tokens": cached_audio,
        "output_tokens": output,
        "output_audio_tokens": out_audio,
        "num_model_requests": requests,
    }
    at = AT - day * 86400
    context = {"service_tier": tier} if tier in ("flex", "priority") else {}
    half = batch == "true" and not module._has_variant(model, "processing", "batch")
    if batch == "true" and not half:
        context["processing"] = "batch"
    key = tuple(sorted(context.items()))
    # The library's price on the day the tier's rate is first known to it (before that it
    # prices tiers at the default rate; see prices._tier_day), half for a Batch rate it lacks.
    when = module._tier_day(model, key, module._day(at))
    average = module._average_request(row, requests)
    library = module._library_price(average, model, when, key)
    fast = Prices().estimate(row, at)
    linear = module._linear_price(model, when, key)
    if model in ("gpt-4.1-mini", "gpt-realtime"):  # no long-context tier: the fast path
        assert linear is not None
    if library is None:
        assert fast is None
    else:
        assert fast is not None
        expected = library * requests * (Decimal("0.5") if half else 1)
        assert abs(fast - expected) < Decimal("0.000001")


def _on(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


@pytest.mark.parametrize(
    ("case", "usage", "day", "list_price"),
    [
        # Shipped additions for models genai-prices 0.2.3 lacks (OpenAI's model page):
        # gpt-6.2-sol $2 in + $10 out; gpt-6.2-astra $8 + $40.
        ("gpt-6.2-sol", row("gpt-6.2-sol"), "2026-12-01", Decimal("12")),
        ("gpt-6.2-astra", row("gpt-6.2-astra"), "2026-12-01", Decimal("48")),
        # Over 272K input tokens a request: 2x input, 1.5x output.
        ("long context", row("gpt-6.2-sol", requests=1), "2026-12-01", Decimal("19")),
        # Cache writes: $2.50 (30 minutes) and $5.00 (12 hours) instead of the $2 input.
        (
            "12-hour cache writes",
            row(
                "gpt-6.2-sol",
                output_tokens=0,
                input_cache_write_tokens=M,
                input_cache_write_12h_tokens=M,
            ),
            "2026-12-01",
            Decimal("5"),
        ),
        (
            "30-minute cache writes",
            row(
                "gpt-6.2-sol",
                output_tokens=0,
                input_cache_write_tokens=M,
                input_cache_write_30m_tokens=M,
            ),
            "2026-12-01",
            Decimal("2.5"),
        ),
        # Ultrafast: 3x through 2027-02-28, then 6x (gpt-5.6-sol: $4 + $20 standard).
        ("ultrafast", row("gpt-5.6-sol", service_tier="ultrafast"), "2027-02-28", Decimal("72")),
        (
            "ultrafast later",
            row("gpt-5.6-sol", service_tier="ultrafast"),
            "2027-03-01",
            Decimal("144"),
        ),
        (
            "6.2 ultrafast",
            row("gpt-6.2-sol", service_tier="ultrafast"),
            "2026-12-01",
            Decimal("36"),
        ),
        ("6.2 priority", row("gpt-6.2-sol", service_tier="priority"), "2026-12-01", Decimal("24")),
        ("6.2 batch", row("gpt-6.2-sol", batch="true"), "2026-12-01", Decimal("6")),
        # Fine-tuned gpt-4o-mini: cached input $0.15 (the library priced it as uncached, $0.30).
        (
            "fine-tuned cached input",
            row("ft:gpt-4o-mini-2024-07-18:acme::Bx7kQ2", output_tokens=0, input_cached_tokens=M),
            "2026-12-01",
            Decimal("0.15"),
        ),
        # Batch and Flex before genai-prices verified their rates (2026-10-14 and -12): half
        # price all the same, as OpenAI billed them (the library priced them at the default).
        ("batch before", row("gpt-5-nano", batch="true"), "2026-09-01", Decimal("0.225")),
        ("flex before", row("gpt-5-nano", service_tier="flex"), "2026-09-01", Decimal("0.225")),
        # A model the library has no Batch rate for: half its standard price.
        ("batch unknown", row("codex-mini-latest", batch="true"), "2026-11-20", Decimal("3.75")),
    ],
)
def test_the_shipped_additions_price_what_the_library_lacks(
    case: str, usage: dict[str, object], day: str, list_price: Decimal
) -> None:
    assert Prices().estimate(usage, _on(day)) == list_price, case

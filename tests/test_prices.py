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

from usage_tracker.prices import Prices, PricesFileError

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
    from usage_tracker import prices as module

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
    if batch == "true":
        context["processing"] = "batch"
    average = module._average_request(row, requests)
    library = module._library_price(average, model, module._day(at), tuple(sorted(context.items())))
    fast = Prices().estimate(row, at)
    linear = module._linear_price(model, module._day(at), tuple(sorted(context.items())))
    if model in ("gpt-4.1-mini", "gpt-realtime"):  # no long-context tier: the fast path
        assert linear is not None
    if library is None:
        assert fast is None
    else:
        assert fast is not None
        assert abs(fast - library * requests) < Decimal("0.000001")

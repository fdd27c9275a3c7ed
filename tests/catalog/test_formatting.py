"""How the catalog pages write prices, token counts, context windows and the live figures."""

from decimal import Decimal

import pytest

from catalog.templatetags.catalog_format import (
    compact,
    context_k,
    duration_ms,
    feature_label,
    percent,
    score,
    usd_per_m,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "$0"), (1, "$1"), (3.0, "$3"), (0.6, "$0.60"), (Decimal("2.5"), "$2.50"), (0.15, "$0.15"),
     (0.000125, "$0.000125"), (None, "—")],
)  # fmt: skip
def test_prices_per_million_tokens(value, text):
    assert usd_per_m(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (1_000, "1K"), (1_500, "1.5K"), (13_400, "13.4K"), (99_960, "100K"),
     (131_072, "131K"), (999_960, "1M"), (1_234_567, "1.2M"), (3_400_000_000, "3.4B"), (None, "—")],
)  # fmt: skip
def test_token_counts_are_short_with_at_most_three_figures(value, text):
    assert compact(value) == text


def test_context_windows_use_binary_k_when_they_divide():
    assert [context_k(n) for n in (8_192, 32_768, 131_072, 262_144)] == ["8K", "32K", "128K", "256K"]
    assert context_k(100_000) == "100K" and context_k(500) == "500"


def test_live_figures_and_labels():
    assert percent(1.0) == "100%" and percent(0.9833) == "98.3%" and percent(None) == "—"
    assert duration_ms(412.4) == "412 ms" and duration_ms(1_250) == "1.25 s" and duration_ms(None) == "—"
    assert score(83.6) == "83.6" and score(1250) == "1250" and score(72.0) == "72"
    assert feature_label("json_mode") == "JSON mode" and feature_label("prompt_caching") == "Prompt caching"

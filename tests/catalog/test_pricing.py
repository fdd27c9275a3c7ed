"""Costs in integer micro-USD: a token at $X per 1M tokens costs exactly X micro-USD, rounded once, up."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Context, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.models import Model
from catalog.pricing import generation_cost_micro_usd, worst_case_cost_micro_usd


@dataclass
class Prices:
    prompt_price: Decimal
    completion_price: Decimal
    cached_prompt_price: Decimal | None = None
    max_output_tokens: int = 16384


SANDBOX_PRO = Prices(Decimal("0.60"), Decimal("2.50"), Decimal("0.15"))
LLAMA_8B = Prices(Decimal("0.10"), Decimal("0.10"), None, 8192)


def cost(model: Prices, prompt: int, cached: int, completion: int, tools: int = 0) -> int:
    return generation_cost_micro_usd(
        model=model,
        prompt_tokens=prompt,
        cached_prompt_tokens=cached,
        completion_tokens=completion,
        tool_costs_micro_usd=tools,
    )


def test_each_token_class_at_its_own_price() -> None:
    # 1000 x 0.60 + 2000 x 0.15 + 500 x 2.50 = 600 + 300 + 1250
    assert cost(SANDBOX_PRO, 1000, 2000, 500) == 2150


def test_tool_costs_are_added() -> None:
    assert cost(SANDBOX_PRO, 1000, 2000, 500, tools=7) == 2157


def test_fraction_is_rounded_up() -> None:
    # 12345 x 0.10 + 678 x 0.10 = 1234.5 + 67.8 = 1302.3 → 1303
    assert cost(LLAMA_8B, 12345, 0, 678) == 1303


def test_rounding_happens_once_on_the_total() -> None:
    # 0.60 + 0.15 + 2.50 = 3.25 → 4 (rounding each part up first would give 1 + 1 + 3 = 5)
    assert cost(SANDBOX_PRO, 1, 1, 1) == 4


def test_exact_decimal_total_is_not_rounded_up_by_float_error() -> None:
    # 1 x 0.10 + 29 x 0.10 = 3.0 exactly; in floats it is 3.0000000000000004, which would ceil to 4.
    assert 1 * 0.1 + 29 * 0.1 > 3
    assert cost(LLAMA_8B, 1, 0, 29) == 3


def test_cached_tokens_fall_back_to_prompt_price() -> None:
    assert cost(LLAMA_8B, 0, 1000, 0) == 100  # 1000 x 0.10


def test_zero_cached_price_is_free_not_fallback() -> None:
    free_cache = Prices(Decimal("1"), Decimal("1"), Decimal("0"))
    assert cost(free_cache, 10, 1000, 0) == 10


def test_free_model_costs_nothing_but_tools() -> None:
    free = Prices(Decimal("0"), Decimal("0"), Decimal("0"))
    assert cost(free, 100_000, 50_000, 100_000) == 0
    assert cost(free, 100_000, 0, 100_000, tools=25) == 25


def test_works_with_a_catalog_model_instance() -> None:
    model = Model(
        prompt_price=Decimal("1.000000"),
        completion_price=Decimal("3.000000"),
        cached_prompt_price=None,
        max_output_tokens=32768,
    )
    # 999 x 1 + 1 x 1 + 333 x 3
    assert cost(model, 999, 1, 333) == 1999


@pytest.mark.parametrize("field", ["prompt", "cached", "completion", "tools"])
def test_negative_or_non_integer_counts_are_refused(field: str) -> None:
    counts = {"prompt": 1, "cached": 1, "completion": 1, "tools": 0}
    counts[field] = -1
    with pytest.raises(ValueError, match="must be a non-negative integer"):
        cost(SANDBOX_PRO, counts["prompt"], counts["cached"], counts["completion"], counts["tools"])
    with pytest.raises(ValueError):
        cost(SANDBOX_PRO, 1.5, 0, 0)  # type: ignore[arg-type]


def test_worst_case_uses_max_tokens() -> None:
    # 1000 x 0.60 + 2000 x 2.50 = 600 + 5000
    assert worst_case_cost_micro_usd(model=SANDBOX_PRO, prompt_tokens=1000, max_tokens=2000) == 5600


def test_worst_case_without_max_tokens_uses_model_max_output() -> None:
    # 1000 x 0.60 + 16384 x 2.50 = 600 + 40960
    assert worst_case_cost_micro_usd(model=SANDBOX_PRO, prompt_tokens=1000, max_tokens=None) == 41560


def test_worst_case_caps_max_tokens_at_model_max_output() -> None:
    assert worst_case_cost_micro_usd(model=SANDBOX_PRO, prompt_tokens=1000, max_tokens=1_000_000) == 41560


def test_worst_case_rounds_up() -> None:
    # 7 x 0.10 + 1 x 0.10 = 0.8 → 1
    assert worst_case_cost_micro_usd(model=LLAMA_8B, prompt_tokens=7, max_tokens=1) == 1


def test_worst_case_uses_the_dearer_of_prompt_and_cached_price() -> None:
    odd = Prices(Decimal("1"), Decimal("2"), Decimal("3"), 100)
    # 10 x 3 + 100 x 2
    assert worst_case_cost_micro_usd(model=odd, prompt_tokens=10, max_tokens=None) == 230


def test_worst_case_is_never_below_actual_cost() -> None:
    worst = worst_case_cost_micro_usd(model=SANDBOX_PRO, prompt_tokens=3000, max_tokens=500)
    actual = cost(SANDBOX_PRO, 1000, 2000, 500)
    assert worst >= actual


_EXACT = Context(prec=200)  # the reference sums with no rounding before the last step


def _reference_cost(model: Prices, prompt: int, cached: int, completion: int) -> int:
    cached_rate = model.prompt_price if model.cached_prompt_price is None else model.cached_prompt_price
    amount = _EXACT.add(
        _EXACT.add(_EXACT.multiply(prompt, model.prompt_price), _EXACT.multiply(cached, cached_rate)),
        _EXACT.multiply(completion, model.completion_price),
    )
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


_prices = st.builds(
    Prices,
    st.decimals(min_value=0, max_value=100_000, allow_nan=False, allow_infinity=False, places=9),
    st.decimals(min_value=0, max_value=100_000, allow_nan=False, allow_infinity=False, places=2),
    st.none() | st.decimals(min_value=0, max_value=100_000, allow_nan=False, allow_infinity=False, places=6),
)
_count = st.integers(min_value=0, max_value=10**24)  # past Decimal's default 28 digits once multiplied


@settings(max_examples=400, deadline=None)
@given(model=_prices, prompt=_count, cached=_count, completion=_count)
def test_the_integer_sum_is_the_exact_sum_rounded_up_once(model, prompt, cached, completion) -> None:
    assert cost(model, prompt, cached, completion) == _reference_cost(model, prompt, cached, completion)
    worst = worst_case_cost_micro_usd(model=model, prompt_tokens=prompt + cached, max_tokens=None)
    assert worst >= cost(model, prompt, cached, min(completion, model.max_output_tokens))

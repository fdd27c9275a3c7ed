"""What a generation costs, in integer micro-USD.

Catalog prices are USD per 1M tokens, so one token at $X/M costs exactly X micro-USD. Costs are summed
exactly and rounded once, up, at the end (design §4): a workspace is never charged less than it used. A
token cost is summed in integers — a model's prices over one common denominator (`_rates`) — and rounded up
by one integer division; server tools' prices, in Decimal.
"""

import math
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Protocol


class Priced(Protocol):
    """Anything with a model's prices: a catalog.models.Model, or a cached copy of one on the hot path."""

    @property
    def prompt_price(self) -> Decimal: ...
    @property
    def completion_price(self) -> Decimal: ...
    @property
    def cached_prompt_price(self) -> Decimal | None: ...
    @property
    def max_output_tokens(self) -> int: ...


def _tokens(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    return value


def _ceil(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


@lru_cache(maxsize=4096)
def _rates(*prices: Decimal) -> tuple[int, ...]:
    """The prices as integers over their least common denominator, which comes last: exact for any finite
    Decimal (no context precision in the way), so their sums are too. Four times cheaper than Decimal
    arithmetic, and this runs on every request (the reservation, the answer's cost, the bill)."""
    ratios = [price.as_integer_ratio() for price in prices]
    denominator = math.lcm(*(each for _, each in ratios))
    return (*(numerator * (denominator // each) for numerator, each in ratios), denominator)


def _ceil_div(amount: int, denominator: int) -> int:
    return -(-amount // denominator)


def cached_price(model: Priced) -> Decimal:
    """A model without a cached price bills cached prompt tokens at the prompt price."""
    return model.prompt_price if model.cached_prompt_price is None else model.cached_prompt_price


def generation_cost_micro_usd(
    *,
    model: Priced,
    prompt_tokens: int,
    cached_prompt_tokens: int,
    completion_tokens: int,
    tool_costs_micro_usd: int = 0,
) -> int:
    """The cost of a finished generation.

    `prompt_tokens` are the *uncached* prompt tokens only; `cached_prompt_tokens` are billed separately.
    (OpenAI-style usage reports a total that includes the cached ones: pass total - cached.)
    `completion_tokens` include reasoning tokens. `tool_costs_micro_usd` is added as is.
    """
    _tokens("prompt_tokens", prompt_tokens)
    _tokens("cached_prompt_tokens", cached_prompt_tokens)
    _tokens("completion_tokens", completion_tokens)
    _tokens("tool_costs_micro_usd", tool_costs_micro_usd)
    prompt, cached, completion, denominator = _rates(
        model.prompt_price, cached_price(model), model.completion_price
    )
    amount = prompt_tokens * prompt + cached_prompt_tokens * cached + completion_tokens * completion
    return _ceil_div(amount, denominator) + tool_costs_micro_usd


def worst_case_cost_micro_usd(*, model: Priced, prompt_tokens: int, max_tokens: int | None) -> int:
    """The most a request can cost, for the reservation made before it goes upstream.

    Every prompt token is billed at the higher of the prompt and cached prices (caching is not known
    in advance). Output is `max_tokens`, or the model's max output when unset; a `max_tokens` above the
    model's max output is capped there, since the model cannot produce more.
    """
    _tokens("prompt_tokens", prompt_tokens)
    output = (
        model.max_output_tokens
        if max_tokens is None
        else min(_tokens("max_tokens", max_tokens), model.max_output_tokens)
    )
    prompt, cached, completion, denominator = _rates(
        model.prompt_price, cached_price(model), model.completion_price
    )
    return _ceil_div(prompt_tokens * max(prompt, cached) + output * completion, denominator)


MICRO = Decimal(1_000_000)


def tool_costs_micro_usd(
    prices: Mapping[tuple[str, str], Decimal], used: Iterable[tuple[str, Mapping[str, int]]]
) -> dict[str, int]:
    """What the server tool calls of one generation cost, by tool, in micro-USD: each `(tool, units)` call's
    units at the prices per (tool, unit) in USD, a unit without a price free, each tool's sum rounded once,
    up. A tool none of whose units cost anything is left out."""
    totals: dict[str, Decimal] = {}
    for tool, units in used:
        for unit, count in units.items():
            _tokens(f"{tool}.{unit}", count)
            price = prices.get((tool, unit), Decimal(0))
            totals[tool] = totals.get(tool, Decimal(0)) + count * price * MICRO
    return {tool: _ceil(amount) for tool, amount in totals.items() if amount}

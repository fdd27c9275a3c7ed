"""What a request with server tools reserves beyond its first answer (ADR 0013, design §4.1).

Every step after the first is another upstream request whose prompt is the conversation so far: the prompt,
plus each earlier step's answer (at most `max_tokens`) and tool results (at most MAX_CALLS_PER_STEP results of
MAX_TOOL_TEXT characters), never more than the model's context. Every step but the last (told not to call)
may run MAX_CALLS_PER_STEP calls of the dearest tool switched on, each at most its `max_units`.
"""

from collections.abc import Mapping
from decimal import Decimal

from catalog.pricing import tool_costs_micro_usd, worst_case_cost_micro_usd
from gateway.catalog_cache import ModelInfo
from gateway.tokens import text_tokens
from gateway.tools.base import ServerTool
from gateway.tools.web import MAX_TOOL_TEXT

MAX_CALLS_PER_STEP = 4  # server calls one step may run; the loop answers more with an error result
_RESULT_TOKENS = text_tokens(MAX_TOOL_TEXT) + 16  # one result, with its framing


def loop_reserve_micro_usd(
    *,
    model: ModelInfo,
    prompt_tokens: int,
    max_tokens: int | None,
    tools: Mapping[str, ServerTool],
    max_steps: int,
    prices: Mapping[tuple[str, str], Decimal],
) -> int:
    """The most the steps after the first and every tool call can add to the first step's worst case."""
    if not tools:
        return 0
    output = model.max_output_tokens if max_tokens is None else min(max_tokens, model.max_output_tokens)
    growth = output + MAX_CALLS_PER_STEP * _RESULT_TOKENS
    steps = sum(
        worst_case_cost_micro_usd(
            model=model,
            prompt_tokens=min(model.context_length, prompt_tokens + step * growth),
            max_tokens=max_tokens,
        )
        for step in range(1, max_steps)
    )
    dearest = max(
        sum(tool_costs_micro_usd(prices, [(name, tool.max_units)]).values()) for name, tool in tools.items()
    )
    return steps + (max_steps - 1) * MAX_CALLS_PER_STEP * dearest

"""What server tools add to a reservation (gateway/tools/budget.py) and which a model may use
(gateway/tools/requested.py): the worst case of the step limit, priced by hand here from the rule."""

from decimal import Decimal

import pytest

from core.errors import ApiError
from gateway.canonical import CanonicalRequest, Message, ServerToolUse, TextBlock, Tool
from gateway.catalog_cache import ModelInfo
from gateway.tools.budget import MAX_CALLS_PER_STEP, loop_reserve_micro_usd
from gateway.tools.current_time import CurrentTime
from gateway.tools.requested import plan, reserve_extra
from gateway.tools.search import SandboxBackend
from gateway.tools.web import WebSearch

PRICES = {
    ("web_search", "call"): Decimal("0.005"),
    ("web_search", "result"): Decimal("0.001"),
    ("datetime", "call"): Decimal("0"),
    ("pdf", "page"): Decimal("0.0002"),
}


def model(features=("tools",), context=32_000) -> ModelInfo:
    # $1 and $2 per million tokens: a prompt token costs 1 micro-USD, a completion token 2.
    return ModelInfo(
        slug="test/tools", context_length=context, max_output_tokens=1_000, prompt_price=Decimal(1),
        completion_price=Decimal(2), cached_prompt_price=None, features=frozenset(features), routes=(),
    )  # fmt: skip


def request(*uses: str, tools=()) -> CanonicalRequest:
    return CanonicalRequest(
        "test/tools",
        [Message("user", [TextBlock("hi")])],
        tools=list(tools),
        server_tools=tuple(ServerToolUse(name) for name in uses),
    )


def test_no_tools_add_nothing():
    assert (
        loop_reserve_micro_usd(
            model=model(), prompt_tokens=100, max_tokens=50, tools={}, max_steps=5, prices=PRICES
        )
        == 0
    )


def test_every_later_step_and_every_call_is_reserved_at_its_worst():
    search = {"web_search": WebSearch(SandboxBackend())}
    extra = loop_reserve_micro_usd(
        model=model(), prompt_tokens=100, max_tokens=50, tools=search, max_steps=3, prices=PRICES
    )
    # A result is at most 20,000 characters: 6,667 tokens at 3 characters a token, and 16 of framing.
    growth = 50 + MAX_CALLS_PER_STEP * (6_667 + 16)  # one step's answer and its results
    step_2 = (100 + growth) * 1 + 50 * 2
    step_3 = 32_000 * 1 + 50 * 2  # the conversation cannot outgrow the context
    calls = 2 * MAX_CALLS_PER_STEP * (5_000 + 10 * 1_000)  # the last step may not call: 10 results a call
    assert extra == step_2 + step_3 + calls


def test_a_model_that_cannot_call_tools_reserves_one_run_of_each_and_the_pages_read():
    planned = plan(request("web_search", "datetime"), model(features=()), PRICES)
    assert not planned.model_calls_tools and planned.max_steps == 1
    assert reserve_extra(planned, model(), 100, 50, pdf_pages=3) == (5_000 + 10 * 1_000) + 0 + 3 * 200


def test_tools_a_model_without_tool_calling_cannot_run_are_refused_naming_them():
    with pytest.raises(ApiError) as refused:
        plan(request("web_search", "web_fetch"), model(features=()), PRICES)
    assert refused.value.param == "plugins" and "'web_fetch'" in refused.value.message


def test_a_client_tool_named_like_a_server_tool_is_refused():
    clashing = request("datetime", tools=[Tool("datetime")])
    with pytest.raises(ApiError) as refused:
        plan(clashing, model(), PRICES)
    assert refused.value.param == "tools" and "'datetime'" in refused.value.message


def test_pdf_is_no_loop_tool_and_options_reach_their_tool(settings):
    settings.SERVER_TOOL_MAX_STEPS = 4
    asked = CanonicalRequest(
        "test/tools",
        [Message("user", [TextBlock("hi")])],
        server_tools=(ServerToolUse("pdf"), ServerToolUse("web_search", {"max_results": 2})),
    )
    planned = plan(asked, model(), PRICES)
    assert set(planned.tools) == {"web_search"} and planned.max_steps == 4
    assert planned.options["web_search"] == {"max_results": 2}
    assert isinstance(plan(request("datetime"), model(), PRICES).tools["datetime"], CurrentTime)

"""The sandbox model (gateway/upstreams/mock.py) takes part in the server-tool loop offline: it calls the
server tool the user's words ask for, among those offered, and then answers from the results."""

import asyncio
import json

import pytest

from gateway.canonical import (
    BlockStart,
    CanonicalRequest,
    Finish,
    Message,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
)
from gateway.upstreams.base import ProviderInfo, RouteInfo
from gateway.upstreams.mock import MockAdapter

ROUTE = RouteInfo(ProviderInfo("sandbox", "mock", "", "", 5.0), "sandbox", {"first_token_ms": 0})
SERVER_TOOLS = [Tool(name) for name in ("web_search", "web_fetch", "datetime", "image")]


def answer(request: CanonicalRequest) -> list:
    async def go():
        return [event async for event in MockAdapter().stream(request, ROUTE, None)]

    return asyncio.run(go())


def asked(text: str, tools=SERVER_TOOLS, choice=None) -> CanonicalRequest:
    return CanonicalRequest(
        "sandbox", [Message("user", [TextBlock(text)])], tools=list(tools), tool_choice=choice
    )


def call_of(events: list) -> tuple[str, dict] | None:
    starts = [e for e in events if isinstance(e, BlockStart) and e.kind == "tool_call"]
    if not starts:
        return None
    arguments = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    return starts[0].tool_name, json.loads(arguments)


@pytest.mark.parametrize(
    ("words", "call"),
    [
        ("Please read https://example.com/a?b=1.", ("web_fetch", {"url": "https://example.com/a?b=1"})),
        ("What time is it in Europe/Paris?", ("datetime", {"timezone": "Europe/Paris"})),
        ("what's the date today", ("datetime", {})),
        ("Draw a picture of a cat", ("image", {"prompt": "Draw a picture of a cat"})),
        ("Search for llama news", ("web_search", {"query": "Search for llama news"})),
        ("Who won the match?", ("web_search", {"query": "Who won the match?"})),
    ],
)
def test_the_users_words_choose_the_server_tool(words, call):
    events = answer(asked(words))
    assert call_of(events) == call and events[-2] == Finish("tool_calls")


def test_only_offered_tools_are_called_and_none_when_told_not_to():
    assert call_of(answer(asked("What time is it?", tools=[Tool("web_search")]))) == (
        "web_search",
        {"query": "What time is it?"},
    )
    assert call_of(answer(asked("What time is it?", choice=ToolChoice("none")))) is None
    assert call_of(answer(asked("Hello there"))) is None  # nothing asked for


def test_it_answers_from_the_results_citing_their_numbers():
    conversation = [
        Message("user", [TextBlock("Search for the gateway")]),
        Message("assistant", [ToolCallBlock("call_mock_0", "web_search", '{"query": "gateway"}')]),
        Message("tool", [ToolResultBlock("call_mock_0", [TextBlock("Results:\n[1] HyperInfer\n[2] Other")])]),
    ]
    events = answer(CanonicalRequest("sandbox", conversation, tools=list(SERVER_TOOLS)))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Here is what I found (sandbox): Results: [1] HyperInfer [2] Other [1] [2]"
    assert call_of(events) is None and events[-2] == Finish("stop")


def test_a_failed_result_is_said_to_have_failed():
    failed = ToolResultBlock("c", [TextBlock("Error: no answer")], is_error=True)
    called = Message("assistant", [ToolCallBlock("c", "datetime", "{}")])
    conversation = [Message("user", [TextBlock("time?")]), called, Message("tool", [failed])]
    events = answer(CanonicalRequest("sandbox", conversation))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Here is what I found (sandbox): The tool failed: Error: no answer"
    client_tool = [
        Message("user", [TextBlock("hi")]),
        Message("assistant", [ToolCallBlock("c", "weather", "{}")]),
    ]
    events = answer(CanonicalRequest("sandbox", [*client_tool, Message("tool", [failed])]))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("Hello from the HyperInfer")

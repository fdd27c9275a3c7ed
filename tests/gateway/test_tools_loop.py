"""The server-tool loop over scripted steps: what the client is sent (server calls held back, blocks numbered
on), what each step is asked (the conversation with the calls and their results, the last step told not to
call), and what is billed (every step's usage, every call run)."""

import asyncio
import json
from datetime import UTC, datetime

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    ErrorEvent,
    Finish,
    Message,
    ReasoningDelta,
    ServerToolCall,
    ServerToolResult,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    Usage,
)
from gateway.tools.base import ServerTool, ToolContext, ToolOutcome
from gateway.tools.current_time import CurrentTime
from gateway.tools.loop import ToolLoop

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
WEATHER = Tool("get_weather", "The weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def text(index: int, words: str) -> list:
    return [BlockStart(index, "text"), TextDelta(index, words), BlockStop(index)]


def call(index: int, name: str, arguments: str, call_id: str | None = None) -> list:
    start = BlockStart(index, "tool_call", tool_call_id=call_id or f"call_{name}_{index}", tool_name=name)
    return [start, ToolCallDelta(index, arguments[:5]), ToolCallDelta(index, arguments[5:]), BlockStop(index)]


class Script:
    """Steps to answer, in order; records what each step was asked."""

    def __init__(self, *steps: list) -> None:
        self.steps = list(steps)
        self.asked: list[CanonicalRequest] = []

    async def open(self, request: CanonicalRequest):
        self.asked.append(request)
        events = self.steps.pop(0)

        async def stream():
            for event in events:
                yield event

        return stream()


def run(script: Script, request: CanonicalRequest | None = None, tools=None, max_steps: int = 5):
    loop = ToolLoop(tools or {"datetime": CurrentTime(now=lambda: NOW)}, ToolContext(session=None), max_steps)
    request = request or CanonicalRequest("m", [Message("user", [TextBlock("What time is it in Paris?")])])

    async def collect():
        return [event async for event in loop.events(request, script.open)]

    return asyncio.run(collect()), loop


def test_a_server_call_is_run_between_steps_and_only_the_answer_reaches_the_client():
    paris = '{"timezone": "Europe/Paris"}'
    script = Script(
        [*text(0, "Let me check. "), *call(1, "datetime", paris), Finish("tool_calls"), Usage(20, 8)],
        [*text(0, "It is 10:30 in Paris."), Finish("stop"), Usage(60, 9, cached_prompt_tokens=20)],
    )
    events, loop = run(script)
    [ran] = loop.runs
    assert events == [
        *text(0, "Let me check. "),
        # The call whole (never as the client's own tool call), then its result: a block each.
        ServerToolCall(1, "call_datetime_1", "datetime", paris),
        ServerToolResult(2, "call_datetime_1", "datetime", paris, ran.outcome.text),
        *text(3, "It is 10:30 in Paris."),  # numbered on
        Finish("stop"),
        Usage(80, 17, cached_prompt_tokens=20),  # both steps are billed
    ]
    assert (ran.name, json.loads(ran.arguments)) == ("datetime", {"timezone": "Europe/Paris"})
    assert ran.outcome.text.startswith("Thursday, 03 December 2026, 10:30:00 in Europe/Paris")
    # The second step heard the first one's words, its call and the result.
    _, assistant, tool = script.asked[1].messages
    assert assistant == Message(
        "assistant",
        [
            TextBlock("Let me check. "),
            ToolCallBlock("call_datetime_1", "datetime", '{"timezone": "Europe/Paris"}'),
        ],
    )
    assert tool.role == "tool" and tool.content[0].tool_call_id == "call_datetime_1"
    assert tool.content[0].content[0].text == ran.outcome.text and not tool.content[0].is_error


def test_every_step_is_offered_the_server_tools_beside_the_clients_and_the_last_may_not_call_them():
    looping = [*call(0, "datetime", "{}"), Finish("tool_calls"), Usage(10, 2)]
    script = Script(looping, list(looping), [*text(0, "Enough."), Finish("stop"), Usage(30, 2)])
    request = CanonicalRequest("m", [Message("user", [TextBlock("hi")])], tools=[WEATHER])
    events, loop = run(script, request, max_steps=3)
    assert [[tool.name for tool in asked.tools] for asked in script.asked] == [
        ["get_weather", "datetime"]
    ] * 3
    assert [asked.tool_choice for asked in script.asked] == [None, None, ToolChoice("none")]
    assert len(loop.runs) == 2 and loop.steps == 3 and events[-1] == Usage(50, 6)


def test_a_step_that_also_calls_a_client_tool_ends_the_loop_and_drops_the_server_calls():
    weather = call(1, "get_weather", '{"city": "Paris"}', "call_w")
    script = Script([*call(0, "datetime", "{}"), *weather, Finish("tool_calls"), Usage(10, 5)])
    request = CanonicalRequest("m", [Message("user", [TextBlock("hi")])], tools=[WEATHER])
    events, loop = run(script, request)
    assert events == [
        *call(0, "get_weather", '{"city": "Paris"}', "call_w"),
        Finish("tool_calls"),
        Usage(10, 5),
    ]
    assert loop.runs == []  # neither run nor billed


def test_a_final_step_still_calling_a_server_tool_just_ends():
    script = Script([*text(0, "Hmm"), *call(1, "datetime", "{}"), Finish("tool_calls"), Usage(5, 3)])
    events, loop = run(script, max_steps=1)
    assert events == [*text(0, "Hmm"), Finish("stop"), Usage(5, 3)] and loop.runs == []


class Broken(ServerTool):
    name = "broken"
    description = "always fails"
    parameters = {"type": "object"}

    async def run(self, arguments, context) -> ToolOutcome:
        raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("broken", "{}", "broken failed"),
        ("datetime", "{not json", "the arguments are not valid JSON"),
        ("datetime", "[1, 2]", "the arguments must be a JSON object"),
        ("datetime", '{"timezone": "Nowhere/Else"}', "'Nowhere/Else' is not an IANA time zone"),
    ],
)
def test_a_failed_call_is_an_error_result_the_model_reads_and_the_loop_goes_on(name, arguments, error):
    script = Script(
        [*call(0, name, arguments), Finish("tool_calls"), Usage(5, 3)],
        [*text(0, "Sorry."), Finish("stop"), Usage(9, 2)],
    )
    tools = {"datetime": CurrentTime(now=lambda: NOW), "broken": Broken()}
    events, loop = run(script, tools=tools)
    [ran] = loop.runs
    assert ran.outcome.error.startswith(error) and ran.outcome.units == {}  # billed nothing
    result: ToolResultBlock = script.asked[1].messages[-1].content[0]
    assert result.is_error and result.content[0].text == f"Error: {ran.outcome.error}"
    assert events[-2:] == [Finish("stop"), Usage(14, 5)]


def test_reasoning_goes_back_signed_and_an_error_event_passes_through():
    thinking = [BlockStart(0, "reasoning"), ReasoningDelta(0, "need the time"), ReasoningDelta(0, "", "sig")]
    script = Script(
        [*thinking, BlockStop(0), *call(1, "datetime", "{}"), Finish("tool_calls"), Usage(5, 3)],
        [*text(0, "Partial"), ErrorEvent(ErrorCode.PROVIDER_UNAVAILABLE, "gone")],
    )
    events, loop = run(script)
    reasoning = script.asked[1].messages[1].content[0]
    assert (reasoning.text, reasoning.signature) == ("need the time", "sig")
    assert events[-1] == ErrorEvent(ErrorCode.PROVIDER_UNAVAILABLE, "gone")  # the end: no Finish after it
    assert loop.usage == Usage(5, 3)  # the finished step's, for the bill
    assert [type(e).__name__ for e in events[4:]] == [
        "ServerToolCall",
        "ServerToolResult",
        "BlockStart",
        "TextDelta",
        "BlockStop",
        "ErrorEvent",
    ]
    assert [e.index for e in events if isinstance(e, BlockStart)] == [0, 3]


def test_a_client_tool_named_like_a_server_tool_is_refused():
    request = CanonicalRequest("m", [Message("user", [TextBlock("hi")])], tools=[Tool("datetime")])
    with pytest.raises(ValueError, match="server tool"):
        run(Script([]), request)

"""Cerebras: parsed reasoning in `reasoning`, reasoning controls, errors inside the stream, time_info."""

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Finish,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ReasoningDelta,
    TextBlock,
    TextDelta,
    Usage,
)
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.cerebras import CerebrasAdapter
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import CEREBRAS_TIME_INFO
from tests.fakes.server import collect_events


def ask(reasoning: ReasoningControl | None = None) -> CanonicalRequest:
    return CanonicalRequest(
        model="m", messages=[Message("user", [TextBlock("Why?")])], reasoning=reasoning, stream=True
    )


def sent(request: CanonicalRequest, scenario: Scenario | None = None) -> tuple[list, dict]:
    with openai_fake("cerebras", scenario) as fake:
        events = collect_events(CerebrasAdapter(), request, fake.route())
        return events, fake.chat_requests[0]


def test_reasoning_streams_from_the_reasoning_field_into_its_own_block_before_the_text():
    scenario = Scenario(reasoning="Think first.", text="Because.", reasoning_tokens=3, cached_tokens=5)
    events, _ = sent(ask(ReasoningControl(effort="high")), scenario)
    assert events == [
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Think"),
        ReasoningDelta(0, " firs"),
        ReasoningDelta(0, "t."),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "Becau"),
        TextDelta(1, "se."),
        BlockStop(1),
        Finish("stop"),
        Usage(
            prompt_tokens=12,
            completion_tokens=7,
            cached_prompt_tokens=5,
            reasoning_tokens=3,
            provider_metadata={"cerebras": {"time_info": CEREBRAS_TIME_INFO}},
        ),
    ]


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (None, {}),
        (ReasoningControl(effort="medium"), {"reasoning_effort": "medium"}),
        (ReasoningControl(budget_tokens=1000), {"reasoning_effort": "low"}),
        (ReasoningControl(budget_tokens=20000), {"reasoning_effort": "high"}),
        (ReasoningControl(enabled=False), {"disable_reasoning": True}),
    ],
)
def test_reasoning_controls_map_to_cerebras_fields(control, expected):
    _, request = sent(ask(control))
    body = request.body
    assert body["reasoning_format"] == "parsed"
    assert {k: body[k] for k in ("reasoning_effort", "disable_reasoning") if k in body} == expected
    assert request.headers["Authorization"] == "Bearer test-key"
    assert body["stream_options"] == {"include_usage": True}


def test_earlier_reasoning_goes_back_in_the_assistant_reasoning_field_and_extra_passes_through():
    request = ask()
    request.messages += [
        Message("assistant", [ReasoningBlock("I considered it."), TextBlock("Because.")]),
        Message("user", [TextBlock("More?")]),
    ]
    request.extra = {"clear_thinking": False, "prompt_cache_key": "conv-1", "service_tier": "priority"}
    _, recorded = sent(request)
    body = recorded.body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "Because.",
        "reasoning": "I considered it.",
    }
    assert (body["clear_thinking"], body["prompt_cache_key"], body["service_tier"]) == (
        False,
        "conv-1",
        "priority",
    )


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (429, "Tokens per minute limit exceeded", ErrorCode.PROVIDER_RATE_LIMIT),
        (400, "Current length exceeds the context_length of the model", ErrorCode.CONTEXT_LENGTH_EXCEEDED),
        (503, "We're experiencing high traffic right now", ErrorCode.PROVIDER_UNAVAILABLE),
        (503, "The model is overloaded", ErrorCode.PROVIDER_OVERLOADED),
        (401, "Wrong API key", ErrorCode.PROVIDER_AUTH),
    ],
)
def test_an_error_chunk_inside_the_stream_maps_by_its_status_code_and_message(status, message, code):
    scenario = Scenario(failure="stream_error", stream_error_status=status, stream_error_message=message)
    with openai_fake("cerebras", scenario) as fake, pytest.raises(UpstreamError) as caught:
        collect_events(CerebrasAdapter(), ask(), fake.route())
    assert (caught.value.code, caught.value.status) == (code, status)
    assert message in caught.value.detail

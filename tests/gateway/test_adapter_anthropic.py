"""The Anthropic Messages adapter against a fake that speaks the real streaming protocol over TCP."""

import json
import socket

import pytest

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Finish,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ReasoningDelta,
    ResponseFormat,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    Usage,
)
from gateway.upstreams.anthropic import AnthropicAdapter
from gateway.upstreams.anthropic_request import build_body
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.registry import adapter_for
from tests.fakes.anthropic_fake import Scenario, ToolUse, anthropic_fake, anthropic_route
from tests.fakes.server import collect_events, collect_events_into

ADAPTER = AnthropicAdapter()
WEATHER = Tool(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def ask(text: str = "Hi", **kwargs) -> CanonicalRequest:
    """A streamed request (a non-streamed one asks for the whole Message: test_adapter_whole_answers.py)."""
    kwargs.setdefault("stream", True)
    return CanonicalRequest(model="anthropic/claude", messages=[Message("user", [TextBlock(text)])], **kwargs)


def run(scenario: Scenario, request: CanonicalRequest | None = None, **route_options):
    with anthropic_fake(scenario) as fake:
        events = collect_events(ADAPTER, request or ask(), anthropic_route(fake.url, **route_options))
    return events, fake.requests


def failure(scenario: Scenario, **route_options) -> UpstreamError:
    with anthropic_fake(scenario) as fake, pytest.raises(UpstreamError) as caught:
        collect_events(ADAPTER, ask(), anthropic_route(fake.url, **route_options))
    return caught.value


def test_registered_under_its_kind():
    assert isinstance(adapter_for("anthropic"), AnthropicAdapter)


def test_text_stream_events_in_order_with_exact_usage():
    scenario = Scenario(
        text="Hello, world!",
        chunks=3,
        input_tokens=10,
        cache_read_input_tokens=100,
        cache_creation_input_tokens=5,
        output_tokens=9,
    )
    events, _ = run(scenario)
    assert events == [
        BlockStart(0, "text"),
        TextDelta(0, "Hello"),
        TextDelta(0, ", wor"),
        TextDelta(0, "ld!"),
        BlockStop(0),
        Finish("stop"),
        Usage(prompt_tokens=115, completion_tokens=9, cached_prompt_tokens=100, cache_write_prompt_tokens=5),
    ]


def test_request_headers_model_and_system_extraction():
    request = CanonicalRequest(
        stream=True,
        model="anthropic/claude",
        messages=[
            Message("system", [TextBlock("You are terse.")]),
            Message("system", [TextBlock("Answer in French.")]),
            Message("user", [TextBlock("Hi")]),
        ],
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        user="user-42",
    )
    _, requests = run(Scenario(), request, api_key="sk-ant-secret", model="claude-sonnet-4-5")
    [sent] = requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-secret"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


def test_max_tokens_from_request_then_route_default_and_extra_passthrough():
    _, requests = run(Scenario(), ask(max_tokens=77, extra={"top_k": 5}), max_tokens_default=1000)
    assert requests[0].body["max_tokens"] == 77
    assert requests[0].body["top_k"] == 5
    _, requests = run(Scenario(), ask(), max_tokens_default=1000)
    assert requests[0].body["max_tokens"] == 1000


def test_tool_call_streamed_out():
    scenario = Scenario(text="Let me check.", chunks=1, tool_use=ToolUse("get_weather", {"city": "Paris"}))
    request = ask("Weather in Paris?", tools=[WEATHER], tool_choice=ToolChoice("required"))
    events, requests = run(scenario, request)
    assert requests[0].body["tools"] == [
        {"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert requests[0].body["tool_choice"] == {"type": "any"}
    assert events[:4] == [
        BlockStart(0, "text"),
        TextDelta(0, "Let me check."),
        BlockStop(0),
        BlockStart(1, "tool_call", tool_call_id="toolu_01A", tool_name="get_weather"),
    ]
    fragments = [event for event in events if isinstance(event, ToolCallDelta)]
    assert len(fragments) == 3 and all(fragment.index == 1 for fragment in fragments)
    assert json.loads("".join(fragment.arguments for fragment in fragments)) == {"city": "Paris"}
    assert events[-3:] == [BlockStop(1), Finish("tool_calls"), Usage(12, 7)]


def test_tool_round_trip_sends_tool_use_and_tool_result_blocks():
    request = CanonicalRequest(
        stream=True,
        model="anthropic/claude",
        messages=[
            Message("user", [TextBlock("Weather in Paris and Rome?")]),
            Message(
                "assistant",
                [
                    TextBlock("Checking."),
                    ToolCallBlock("toolu_1", "get_weather", '{"city": "Paris"}'),
                    ToolCallBlock("toolu_2", "get_weather", '{"city": "Rome"}'),
                ],
            ),
            Message("tool", [ToolResultBlock("toolu_1", [TextBlock("18C sunny")])]),
            Message("tool", [ToolResultBlock("toolu_2", [TextBlock("city not found")], is_error=True)]),
            Message("user", [TextBlock("Thanks")]),
        ],
        tools=[WEATHER],
        tool_choice=ToolChoice("tool", "get_weather"),
    )
    events, requests = run(Scenario(text="Paris is sunny."), request)
    assert requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "18C sunny"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "city not found"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    assert requests[0].body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert events[-2] == Finish("stop")


def test_invalid_tool_arguments_are_an_invalid_request():
    request = CanonicalRequest(
        stream=True,
        model="m",
        messages=[
            Message("user", [TextBlock("x")]),
            Message("assistant", [ToolCallBlock("t", "f", "{oops")]),
        ],
    )
    with pytest.raises(UpstreamError) as caught:
        build_body(request, anthropic_route("http://unused"))
    assert caught.value.code == ErrorCode.INVALID_REQUEST


def test_thinking_with_signature_streamed_in():
    scenario = Scenario(thinking="Let me think.", signature="sig-abc", text="42", chunks=1)
    events, requests = run(scenario, ask(reasoning=ReasoningControl(effort="low"), temperature=0.3))
    assert requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "temperature" not in requests[0].body  # Anthropic rejects it with thinking on
    assert events == [
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Let me "),
        ReasoningDelta(0, "think."),
        ReasoningDelta(0, "", signature="sig-abc"),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "42"),
        BlockStop(1),
        Finish("stop"),
        Usage(12, 7),
    ]


def test_redacted_thinking_streamed_in_carries_its_data_as_signature():
    events, _ = run(Scenario(redacted_thinking="opaque-data", text="ok", chunks=1))
    assert events[:5] == [
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "", signature="opaque-data", redacted=True),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "ok"),
    ]


def test_reasoning_block_with_signature_is_sent_back_as_thinking():
    request = CanonicalRequest(
        stream=True,
        model="anthropic/claude",
        messages=[
            Message("user", [TextBlock("Q")]),
            Message(
                "assistant",
                [
                    ReasoningBlock("Let me think.", signature="sig-abc"),
                    ReasoningBlock("", signature="opaque-data", redacted=True),
                    ReasoningBlock("from another provider, unsigned"),
                    TextBlock("42"),
                ],
            ),
            Message("user", [TextBlock("Why?")]),
        ],
        reasoning=ReasoningControl(budget_tokens=2000),
    )
    _, requests = run(Scenario(), request)
    assert requests[0].body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc"},
        {"type": "redacted_thinking", "data": "opaque-data"},
        {"type": "text", "text": "42"},
    ]
    assert requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_thinking_budget_is_kept_below_max_tokens():
    body = build_body(
        ask(max_tokens=500, reasoning=ReasoningControl(effort="high")), anthropic_route("http://x")
    )
    assert body["thinking"]["budget_tokens"] == 16384
    assert body["max_tokens"] == 16884
    body = build_body(ask(reasoning=ReasoningControl(enabled=False)), anthropic_route("http://x"))
    assert "thinking" not in body


def test_images_json_format_and_tool_choice_none():
    request = CanonicalRequest(
        stream=True,
        model="anthropic/claude",
        messages=[
            Message(
                "user",
                [
                    TextBlock("Compare"),
                    ImageBlock("data:image/jpeg;base64,QUJD"),
                    ImageBlock("https://x.test/a.png"),
                ],
            )
        ],
        response_format=ResponseFormat("json_schema", name="r", schema={"type": "object"}),
        tools=[WEATHER],
        tool_choice=ToolChoice("none"),
    )
    body = build_body(request, anthropic_route("http://x"))
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]
    assert body["system"].endswith('matching this schema: {"type":"object"}')
    assert body["tool_choice"] == {"type": "none"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_stop_reasons(stop_reason, finish):
    events, _ = run(Scenario(stop_reason=stop_reason))
    assert events[-2] == Finish(finish)


@pytest.mark.parametrize(
    ("failure_mode", "code", "status"),
    [
        ("overloaded", ErrorCode.PROVIDER_OVERLOADED, 529),
        ("rate_limit", ErrorCode.PROVIDER_RATE_LIMIT, 429),
        ("auth", ErrorCode.PROVIDER_AUTH, 401),
        ("server_error", ErrorCode.PROVIDER_UNAVAILABLE, 500),
        ("prompt_too_long", ErrorCode.CONTEXT_LENGTH_EXCEEDED, 400),
    ],
)
def test_http_failures(failure_mode, code, status):
    error = failure(Scenario(failure=failure_mode))
    assert (error.code, error.status) == (code, status)
    assert not error.retryable if code == ErrorCode.CONTEXT_LENGTH_EXCEEDED else error.retryable


def test_wrong_api_key_is_provider_auth():
    error = failure(Scenario(api_key="sk-ant-right"), api_key="sk-ant-wrong")
    assert error.code == ErrorCode.PROVIDER_AUTH
    # The client reads a fixed sentence; the provider's words stay in the detail (log, generation record).
    assert error.message == "The model's provider refused this gateway's credentials."
    assert "invalid x-api-key" in error.detail and "401" in error.detail


@pytest.mark.parametrize(
    ("failure_mode", "code"),
    [
        ("cut", ErrorCode.PROVIDER_UNAVAILABLE),
        ("truncated", ErrorCode.PROVIDER_UNAVAILABLE),
        ("error_event", ErrorCode.PROVIDER_OVERLOADED),
        ("malformed", ErrorCode.PROVIDER_UNAVAILABLE),
    ],
)
def test_mid_stream_failures_after_events(failure_mode, code):
    seen = []
    with anthropic_fake(Scenario(failure=failure_mode)) as fake, pytest.raises(UpstreamError) as caught:
        collect_events_into(seen, ADAPTER, ask(), anthropic_route(fake.url))
    assert caught.value.code == code
    if failure_mode != "malformed":  # the others fail after the first text delta reached us
        assert seen == [BlockStart(0, "text"), TextDelta(0, "Hell")]


def test_slow_first_byte_is_provider_timeout():
    error = failure(Scenario(first_byte_delay=0.4), timeout=0.1)
    assert error.code == ErrorCode.PROVIDER_TIMEOUT


def test_connection_refused_is_provider_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as caught:
        collect_events(ADAPTER, ask(), anthropic_route(f"http://127.0.0.1:{port}"))
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE


def test_fake_rejects_what_anthropic_rejects():
    # An adapter bug (e.g. a missing max_tokens) would surface as invalid_request, not pass silently.
    with anthropic_fake(Scenario()) as fake:
        route = anthropic_route(fake.url)
        request = ask(extra={"max_tokens": None})
        with pytest.raises(UpstreamError) as caught:
            collect_events(ADAPTER, request, route)
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert "max_tokens" in caught.value.message


def test_scenarios_are_taken_in_order_and_the_last_repeats():
    with anthropic_fake(Scenario(failure="overloaded"), Scenario(text="ok", chunks=1)) as fake:
        route = anthropic_route(fake.url)
        with pytest.raises(UpstreamError):
            collect_events(ADAPTER, ask(), route)
        assert collect_events(ADAPTER, ask(), route)[1] == TextDelta(0, "ok")
        assert collect_events(ADAPTER, ask(), route)[1] == TextDelta(0, "ok")
    assert len(fake.requests) == 3

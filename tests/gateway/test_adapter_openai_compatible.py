"""The OpenAI-style adapters against real-HTTP fakes of their dialects: what every dialect shares.

Dialect-only behaviour (reasoning fields, auth schemes, token counting) is in test_adapter_<dialect>.py.
"""

import json
import socket
import time

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
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from gateway.upstreams.baseten import BasetenAdapter
from gateway.upstreams.cerebras import CerebrasAdapter
from gateway.upstreams.fireworks import FireworksAdapter
from gateway.upstreams.llamacpp import LlamaCppAdapter
from gateway.upstreams.openai_compatible import OpenAICompatibleAdapter
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import CEREBRAS_TIME_INFO, FakeToolCall, fireworks_perf_metrics
from tests.fakes.server import collect_events, collect_events_into

ADAPTERS = {
    "cerebras": CerebrasAdapter(),
    "fireworks": FireworksAdapter(),
    "baseten": BasetenAdapter(),
    "llamacpp": LlamaCppAdapter(),
}
DIALECTS = list(ADAPTERS)
WEATHER = Tool(
    "get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def ask(text: str = "What is the weather in Paris?", **fields) -> CanonicalRequest:
    """A streamed request (a non-streamed one asks for a whole answer: test_adapter_whole_answers.py)."""
    fields.setdefault("stream", True)
    return CanonicalRequest(model="test/model", messages=[Message("user", [TextBlock(text)])], **fields)


def run(dialect: str, fake, request: CanonicalRequest | None = None, **route):
    return collect_events(ADAPTERS[dialect], request or ask(), fake.route(**route))


# What each dialect reports beside usage (its provider metadata), as the fakes send it.
PROVIDER_METADATA = {
    "cerebras": lambda scenario: {"cerebras": {"time_info": CEREBRAS_TIME_INFO}},
    "fireworks": lambda scenario: {"fireworks": {"perf_metrics": fireworks_perf_metrics(scenario)}},
}


def expected_usage(dialect: str, fake, scenario: Scenario) -> Usage:
    if dialect != "llamacpp":
        metadata = PROVIDER_METADATA[dialect](scenario) if dialect in PROVIDER_METADATA else None
        return Usage(12, 7, scenario.cached_tokens, scenario.reasoning_tokens, provider_metadata=metadata)
    # llama.cpp: the prompt from the server's own usage (the one-token probe), output one chunk per token.
    chunks = -(-len(scenario.text) // scenario.piece)
    return Usage(scenario.prompt_tokens, chunks)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_text_streams_as_one_block_then_finish_then_exact_usage(dialect):
    scenario = Scenario(text="Hello there, how can I help?", cached_tokens=4)
    if dialect == "llamacpp":
        scenario.cached_tokens = 0
    with openai_fake(dialect, scenario) as fake:
        events = run(dialect, fake)
        pieces = ["Hello", " ther", "e, ho", "w can", " I he", "lp?"]
        assert events == [
            BlockStart(0, "text"),
            *[TextDelta(0, piece) for piece in pieces],
            BlockStop(0),
            Finish("stop"),
            expected_usage(dialect, fake, scenario),
        ]
        body = fake.chat_requests[0].body
    assert body["stream"] is True
    assert body["model"] == "fake-model"
    assert body["messages"] == [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_call_streams_its_arguments_in_pieces(dialect):
    call = FakeToolCall("get_weather", '{"city": "Paris"}', id="call_42")
    request = ask(tools=[WEATHER], tool_choice=ToolChoice("tool", "get_weather"))
    with openai_fake(dialect, Scenario(text="", tool_calls=[call])) as fake:
        events = run(dialect, fake, request)
        body = fake.chat_requests[0].body
    assert events[0] == BlockStart(0, "tool_call", tool_call_id="call_42", tool_name="get_weather")
    deltas = [event for event in events if isinstance(event, ToolCallDelta)]
    assert len(deltas) > 1 and all(delta.index == 0 for delta in deltas)
    assert "".join(delta.arguments for delta in deltas) == '{"city": "Paris"}'
    assert events[-3:-1] == [BlockStop(0), Finish("tool_calls")]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def round_trip_request() -> CanonicalRequest:
    return CanonicalRequest(
        model="test/model",
        messages=[
            Message("system", [TextBlock("Be brief.")]),
            Message("user", [TextBlock("Weather in Paris?")]),
            Message("assistant", [ToolCallBlock("call_42", "get_weather", '{"city": "Paris"}')]),
            Message("tool", [ToolResultBlock("call_42", [TextBlock("18°C, sunny")])]),
        ],
        tools=[WEATHER],
        stream=True,
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_result_goes_back_as_assistant_tool_calls_and_a_tool_message(dialect):
    with openai_fake(dialect, Scenario(text="It is 18°C and sunny.")) as fake:
        events = run(dialect, fake, round_trip_request())
        messages = fake.chat_requests[0].body["messages"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is 18°C and sunny."
    call = {
        "id": "call_42",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assistant = {"role": "assistant", "tool_calls": [call]}
    if dialect == "llamacpp":  # chat templates read the content
        assistant["content"] = ""
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": "call_42", "content": "18°C, sunny"},
    ]


def test_anthropic_style_tool_results_inside_a_user_turn_come_first_then_the_text():
    request = ask()
    request.messages.append(
        Message(
            "user",
            [
                ToolResultBlock("call_1", [TextBlock("sunny"), ImageBlock("https://x.test/map.png")]),
                TextBlock("And tomorrow?"),
            ],
        )
    )
    body = CerebrasAdapter().build_body(
        request, RouteInfo(ProviderInfo("c", "cerebras", "http://x", "", 5), "m")
    )
    assert body["messages"][1:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/map.png"}}]},
        {"role": "user", "content": "And tomorrow?"},
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sampling_controls_and_extra_fields_are_sent_and_extra_cannot_turn_streaming_off(dialect):
    request = ask(temperature=0.3, top_p=0.9, stop=["END"], max_tokens=64, user="u-1")
    request.extra = {"seed": 7, "stream": False, "model": "other"}
    with openai_fake(dialect) as fake:
        run(dialect, fake, request)
        body = fake.chat_requests[0].body
    limit_field = "max_completion_tokens" if dialect == "cerebras" else "max_tokens"
    assert (body[limit_field], body["temperature"], body["top_p"], body["stop"]) == (64, 0.3, 0.9, ["END"])
    assert (body["user"], body["seed"], body["stream"], body["model"]) == ("u-1", 7, True, "fake-model")


FAILURES = [
    ("server_error", ErrorCode.PROVIDER_UNAVAILABLE),
    ("rate_limited", ErrorCode.PROVIDER_RATE_LIMIT),
    ("unauthorized", ErrorCode.PROVIDER_AUTH),
    ("overloaded", ErrorCode.PROVIDER_OVERLOADED),
    ("context_length", ErrorCode.CONTEXT_LENGTH_EXCEEDED),
    ("cut", ErrorCode.PROVIDER_UNAVAILABLE),
    ("malformed", ErrorCode.PROVIDER_UNAVAILABLE),
    ("stream_error", ErrorCode.PROVIDER_RATE_LIMIT),  # the fake's in-stream error is a 429
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("failure", "code"), FAILURES)
def test_failures_map_onto_the_taxonomy(dialect, failure, code):
    with openai_fake(dialect, Scenario(failure=failure)) as fake, pytest.raises(UpstreamError) as caught:
        run(dialect, fake)
    assert caught.value.code == code


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_mid_stream_failure_comes_after_the_events_already_streamed(dialect):
    seen = []
    with openai_fake(dialect, Scenario(failure="cut")) as fake, pytest.raises(UpstreamError):
        collect_events_into(seen, ADAPTERS[dialect], ask(), fake.route())
    assert seen == [BlockStart(0, "text"), TextDelta(0, "Hello")]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_slow_first_byte_times_out_on_the_first_byte_deadline(dialect):
    with (
        openai_fake(dialect, Scenario(failure="slow_first_byte")) as fake,
        pytest.raises(UpstreamError) as caught,
    ):
        run(dialect, fake, timeout=30, first_byte_timeout_seconds=0.2)
    assert caught.value.code == ErrorCode.PROVIDER_TIMEOUT


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stream_that_stalls_past_the_provider_timeout_times_out(dialect):
    with openai_fake(dialect, Scenario(failure="stall")) as fake, pytest.raises(UpstreamError) as caught:
        run(dialect, fake, timeout=0.3)
    assert caught.value.code == ErrorCode.PROVIDER_TIMEOUT
    assert caught.value.retryable


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stream_longer_than_the_provider_timeout_runs_to_its_end_while_it_keeps_coming(dialect):
    """A long answer at a model's pace (every gap 0.05 s, the whole ~0.5 s) past the provider's timeout
    (0.3 s): the timeout bounds the wait for the head and each silence, not the answer, as for Anthropic."""
    scenario = Scenario(text="a long answer, generated a few characters at a time", frame_interval=0.05)
    with openai_fake(dialect, scenario) as fake:
        started = time.monotonic()
        events = run(dialect, fake, timeout=0.3)
        took = time.monotonic() - started
    assert took > 0.3
    assert "".join(event.text for event in events if isinstance(event, TextDelta)) == scenario.text


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_closed_port_is_provider_unavailable(dialect):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    route = RouteInfo(ProviderInfo(dialect, dialect, f"http://127.0.0.1:{port}/v1", "k", 2.0), "m")
    with pytest.raises(UpstreamError) as caught:
        collect_events(ADAPTERS[dialect], ask(), route)
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_wrong_api_key_is_provider_auth_with_the_status_kept(dialect):
    with openai_fake(dialect, api_key="right") as fake, pytest.raises(UpstreamError) as caught:
        run(dialect, fake, api_key="wrong")
    assert (caught.value.code, caught.value.status) == (ErrorCode.PROVIDER_AUTH, 401)


def test_the_generic_adapter_asks_for_usage_and_uses_max_completion_tokens():
    with openai_fake("cerebras", Scenario(text="Hi!", reasoning="Greeting.")) as fake:
        events = collect_events(OpenAICompatibleAdapter(), ask(max_tokens=9), fake.route())
        body = fake.chat_requests[0].body
    assert body["stream_options"] == {"include_usage": True} and body["max_completion_tokens"] == 9
    assert "reasoning_format" not in body
    assert [type(e).__name__ for e in events] == [
        "BlockStart", "ReasoningDelta", "ReasoningDelta", "BlockStop",
        "BlockStart", "TextDelta", "BlockStop", "Finish", "Usage",
    ]  # fmt: skip


def test_a_route_option_picks_the_token_limit_field():
    with openai_fake("cerebras") as fake:
        collect_events(
            OpenAICompatibleAdapter(), ask(max_tokens=5), fake.route(max_tokens_field="max_tokens")
        )
        body = fake.chat_requests[0].body
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body


def test_each_kind_is_registered():
    from gateway.upstreams.registry import _ADAPTERS

    kinds = {"openai_compatible", "cerebras", "fireworks", "baseten", "llamacpp"}
    assert kinds <= set(_ADAPTERS)
    assert all(type(_ADAPTERS[kind]).kind == kind for kind in kinds)


def test_usage_json_is_read_with_cached_and_reasoning_details():
    from gateway.upstreams.openai_events import parse_usage

    raw = {"prompt_tokens": 40, "completion_tokens": 100}
    raw |= {
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 60},
    }
    assert parse_usage(raw) == Usage(40, 100, 30, 60)
    assert parse_usage(json.loads('{"prompt_tokens": 5, "completion_tokens": null}')) == Usage(5, 0)


# --- The bodies we send validate against each dialect's published request schema ---------------
SPEC_FILES = {
    "cerebras": ("000_746281c3df5eb076.txt", "ChatCompletionRequest"),
    "baseten": ("001_54967d1d0ed9b20a.txt", "ChatCompletionRequest"),
    "llamacpp": ("002_b94edade3b873bc3.txt", "CreateChatCompletionRequest"),
    "fireworks": ("003_bf3042a7b65f1baa.txt", "ChatCompletionRequest"),
}


def dialect_schema(dialect: str) -> dict:
    import os
    import re
    from pathlib import Path

    import yaml

    default = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
    filename, name = SPEC_FILES[dialect]
    path = Path(os.environ.get("HYPERINFER_SPECS_DIR", default)) / filename
    if not path.exists():
        pytest.skip(f"spec file not found at {path}: set HYPERINFER_SPECS_DIR")
    text = path.read_text()
    if dialect == "fireworks":  # OpenAPI YAML inside a docs page
        document = yaml.safe_load(re.search(r"````yaml[^\n]*\n(.*?)````", text, re.S).group(1))
    else:
        document = json.loads(text)
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def rich_request(reasoning: ReasoningControl) -> CanonicalRequest:

    request = round_trip_request()
    request.messages[2].content.insert(0, ReasoningBlock("The user wants weather."))
    request.messages[1].content.append(ImageBlock("https://x.test/sky.png", detail="low"))
    request.tool_choice = ToolChoice("auto")
    request.response_format = ResponseFormat("json_schema", "answer", {"type": "object"}, strict=True)
    request.reasoning = reasoning
    request.max_tokens, request.temperature, request.top_p, request.stop = 100, 0.5, 0.9, ["END"]
    request.user = "user-1"
    return request


CONTROLS = [
    ReasoningControl(effort="low"),
    ReasoningControl(budget_tokens=3000),
    ReasoningControl(enabled=False),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("reasoning", CONTROLS, ids=["effort", "budget", "off"])
def test_the_request_body_validates_against_the_dialect_schema(dialect, reasoning):
    from jsonschema import Draft202012Validator

    route = RouteInfo(ProviderInfo(dialect, dialect, "http://x/v1", "k", 5), "m")
    body = ADAPTERS[dialect].build_body(rich_request(reasoning), route)
    errors = sorted(Draft202012Validator(dialect_schema(dialect)).iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_a_stop_reported_after_tool_calls_is_finished_as_tool_calls():
    scenario = Scenario(text="", tool_calls=[FakeToolCall("get_weather", "{}")], finish_reason="stop")
    with openai_fake("baseten", scenario) as fake:
        events = run("baseten", fake, ask(tools=[WEATHER]))
    assert Finish("tool_calls") in events


def test_a_length_finish_is_kept():
    with openai_fake("cerebras", Scenario(text="Cut sho", finish_reason="length")) as fake:
        events = run("cerebras", fake)
    assert events[-2] == Finish("length")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stream_that_ends_with_done_but_no_finish_reason_finishes_as_stop(dialect, caplog):
    """Lenient servers send `data: [DONE]` without ever naming a finish_reason: a normal end, logged."""
    with openai_fake(dialect, Scenario(failure="unfinished")) as fake:
        events = run(dialect, fake)
    assert [event for event in events if isinstance(event, Finish)] == [Finish("stop")]
    assert "ended without a finish_reason" in caplog.text

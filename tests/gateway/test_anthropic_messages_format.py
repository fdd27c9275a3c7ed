"""The Anthropic Messages ingress format's answers on their own: canonical events → the message and its SSE
stream, errors, the documented schemas (tests/gateway/test_anthropic_messages_request.py: the requests)."""

import json

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from jsonschema import Draft202012Validator

from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.fold import Folded
from gateway.ingress import anthropic_messages as fmt
from gateway.openapi import openapi_document
from tests.gateway.schemas import as_the_spec_documents_it, without_extensions


# --- Response object ----------------------------------------------------------------------
def folded_from(*events) -> Folded:
    folded = Folded()
    for event in events:
        folded.add(event)
    return folded


SOME_USAGE = Usage(10, 5)


def message_for(folded: Folded, usage: Usage = SOME_USAGE) -> dict:
    return fmt.response_object(
        request_id="abc", model="m/x", created=0, folded=folded, usage=usage, cost_usd=0.000123
    )


def test_the_message_has_thinking_text_and_tool_use_blocks_in_order():
    folded = folded_from(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Think."),
        ReasoningDelta(0, "", signature="sig-up"),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "Calling."),
        BlockStop(1),
        BlockStart(2, "tool_call", tool_call_id="toolu_9", tool_name="get_weather"),
        ToolCallDelta(2, '{"city":'),
        ToolCallDelta(2, '"Paris"}'),
        BlockStop(2),
        BlockStart(3, "tool_call", tool_call_id="toolu_10", tool_name="now"),
        BlockStop(3),
        Finish("tool_calls"),
    )
    message = message_for(folded)
    assert message == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "m/x",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": "sig-up"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_10", "name": "now", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 5,
            "cost": 0.000123,
        },
    }


def test_reasoning_from_a_non_anthropic_upstream_has_an_empty_signature():
    folded = folded_from(BlockStart(0, "reasoning"), ReasoningDelta(0, "Hmm."), BlockStop(0))
    assert message_for(folded)["content"] == [{"type": "thinking", "thinking": "Hmm.", "signature": ""}]


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish, stop_reason):
    assert message_for(folded_from(Finish(finish)))["stop_reason"] == stop_reason


def test_no_finish_reason_is_end_turn():
    assert message_for(Folded())["stop_reason"] == "end_turn"


def test_usage_input_tokens_exclude_cache_reads_and_writes():
    usage = Usage(100, 40, cached_prompt_tokens=30, reasoning_tokens=10, cache_write_prompt_tokens=20)
    assert fmt.usage_object(usage, 0.5) == {
        "input_tokens": 50,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 40,
        "cost": 0.5,
    }


def test_tool_arguments_that_are_not_a_json_object_become_an_empty_input():
    assert fmt.tool_input('{"a": 1}') == {"a": 1}
    assert fmt.tool_input("") == {} and fmt.tool_input("[1]") == {} and fmt.tool_input('{"cut') == {}


# --- Stream -------------------------------------------------------------------------------
def parse_frames(frames: list[bytes]) -> list[tuple[str, dict]]:
    parsed = []
    for frame in b"".join(frames).decode().split("\n\n")[:-1]:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        parsed.append((event_line[7:], json.loads(data_line[6:])))
    return parsed


UPSTREAM_EVENTS = [
    BlockStart(3, "reasoning"),  # upstream indexes with gaps: renumbered from 0
    ReasoningDelta(3, "Let me "),
    ReasoningDelta(3, "think."),
    ReasoningDelta(3, "", signature="sig-xyz"),
    BlockStop(3),
    BlockStart(5, "text"),
    TextDelta(5, "Sunny"),
    TextDelta(5, " today."),
    BlockStop(5),
    BlockStart(8, "tool_call", tool_call_id="toolu_7", tool_name="get_weather"),
    ToolCallDelta(8, '{"city"'),
    ToolCallDelta(8, ':"Paris"}'),
    BlockStop(8),
    Finish("tool_calls"),
    Usage(50, 20, cached_prompt_tokens=8),
]


FINAL_USAGE = Usage(50, 20, cached_prompt_tokens=8)


def rendered_stream(events=UPSTREAM_EVENTS, usage=FINAL_USAGE) -> list[bytes]:
    stream = fmt.stream_renderer(request_id="r1", model="m/x")
    frames = stream.start()
    for event in events:
        frames.extend(stream.render(event))
    return frames + stream.finish(usage, 0.00007)


def test_the_stream_renumbers_blocks_and_ends_with_stop_reason_and_usage():
    events = parse_frames(rendered_stream())
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        *["content_block_start", "content_block_delta", "content_block_delta", "content_block_delta"],
        "content_block_stop",
        *["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"],
        *["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"],
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["id"] == "msg_r1" and start["content"] == [] and start["stop_reason"] is None
    blocks = [data for name, data in events if name == "content_block_start"]
    assert [b["index"] for b in blocks] == [0, 1, 2]
    assert [b["content_block"] for b in blocks] == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {}},
    ]
    deltas = [(d["index"], d["delta"]) for name, d in events if name == "content_block_delta"]
    assert deltas == [
        (0, {"type": "thinking_delta", "thinking": "Let me "}),
        (0, {"type": "thinking_delta", "thinking": "think."}),
        (0, {"type": "signature_delta", "signature": "sig-xyz"}),
        (1, {"type": "text_delta", "text": "Sunny"}),
        (1, {"type": "text_delta", "text": " today."}),
        (2, {"type": "input_json_delta", "partial_json": '{"city"'}),
        (2, {"type": "input_json_delta", "partial_json": ':"Paris"}'}),
    ]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 42,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 8,
            "output_tokens": 20,
            "cost": 0.00007,
        },
    }
    assert events[-1][1] == {"type": "message_stop"}


def test_the_official_sdk_accumulates_the_stream_into_the_message():
    snapshot = None
    json_buffers: dict[int, bytes] = {}
    for _, data in parse_frames(rendered_stream()):
        if data["type"] != "ping":
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=json_buffers)
    assert snapshot is not None
    thinking, text, tool = snapshot.content
    assert (thinking.type, thinking.thinking, thinking.signature) == ("thinking", "Let me think.", "sig-xyz")
    assert (text.type, text.text) == ("text", "Sunny today.")
    assert (tool.type, tool.id, tool.name, tool.input) == (
        "tool_use",
        "toolu_7",
        "get_weather",
        {"city": "Paris"},
    )
    assert snapshot.stop_reason == "tool_use"
    assert (snapshot.usage.input_tokens, snapshot.usage.output_tokens) == (42, 20)
    assert snapshot.usage.cache_read_input_tokens == 8


def test_blocks_left_open_are_closed_before_message_delta_and_deltas_open_missing_blocks():
    events = parse_frames(rendered_stream([TextDelta(4, "no start"), Finish("length")], Usage(3, 1)))
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[2][1]["index"] == 0 and events[4][1] == {"type": "content_block_stop", "index": 0}
    assert events[5][1]["delta"]["stop_reason"] == "max_tokens"


def test_an_error_after_the_first_byte_is_an_error_event():
    stream = fmt.stream_renderer(request_id="r2", model="m/x")
    stream.start()
    stream.render(BlockStart(0, "text"))
    [(name, data)] = parse_frames(stream.error(ErrorCode.PROVIDER_OVERLOADED, "Overloaded"))
    assert name == "error"
    assert data == {
        "type": "error",
        "error": {"type": "overloaded_error", "code": "provider_overloaded", "message": "Overloaded"},
        "request_id": "r2",
    }


# --- Errors -------------------------------------------------------------------------------
# --- Documented as the spec says ------------------------------------------------------------------
def test_the_messages_operation_is_the_specs_with_the_validators_schema(hyperinfer_spec):
    operation = openapi_document()["paths"]["/api/v1/messages"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == fmt.REQUEST_VALIDATOR.schema
    ours = as_the_spec_documents_it(without_extensions(operation))
    assert ours == hyperinfer_spec["paths"]["/api/v1/messages"]["post"]


def component_validator(name: str) -> Draft202012Validator:
    components = openapi_document()["components"]
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def test_the_message_and_the_error_match_their_documented_schemas():
    folded = folded_from(BlockStart(0, "text"), TextDelta(0, "Hi"), BlockStop(0), Finish("content_filter"))
    component_validator("AnthropicMessageResponse").validate(message_for(folded))
    error = fmt.error_body(ErrorCode.KEY_LIMIT_EXCEEDED, "Over the key's limit.", "rid")
    component_validator("AnthropicError").validate(error)


# --- Several reasoning blocks, redacted ones among them ----------------------------------------------------
SIGNED_AND_REDACTED = [
    BlockStart(0, "reasoning"),
    ReasoningDelta(0, "", signature="opaque", redacted=True),
    BlockStop(0),
    BlockStart(1, "reasoning"),
    ReasoningDelta(1, "Hmm."),
    ReasoningDelta(1, "", signature="sig-2"),
    BlockStop(1),
    BlockStart(2, "reasoning"),  # empty: not sent
    BlockStop(2),
    BlockStart(3, "text"),
    TextDelta(3, "Hi."),
    BlockStop(3),
    Finish("stop"),
]


def test_each_reasoning_block_keeps_its_own_signature_and_a_redacted_one_stays_redacted():
    content = message_for(folded_from(*SIGNED_AND_REDACTED))["content"]
    assert content == [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig-2"},
        {"type": "text", "text": "Hi."},
    ]


def test_the_stream_sends_a_redacted_block_whole_and_skips_an_empty_one():
    events = parse_frames(rendered_stream(SIGNED_AND_REDACTED, Usage(5, 3)))
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
    ]
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert stops == [0, 1, 2]
    snapshot, json_buffers = None, {}
    for _, data in events:
        if data["type"] != "ping":
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=json_buffers)
    assert [block.type for block in snapshot.content] == ["redacted_thinking", "thinking", "text"]
    assert snapshot.content[1].signature == "sig-2"

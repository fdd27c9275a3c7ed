"""The Anthropic Messages ingress format on its own: request → canonical, canonical events → message/SSE."""

import json

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from jsonschema import Draft202012Validator

from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    FileBlock,
    Finish,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ReasoningDelta,
    ServerToolUse,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    Usage,
)
from gateway.fold import Folded
from gateway.ingress import anthropic_messages as fmt
from gateway.openapi import openapi_document
from tests.gateway.schemas import as_the_spec_documents_it, without_extensions

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def body(**fields) -> dict:
    return {"model": "m/x", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}], **fields}


def refusal(raw: dict) -> ApiError:
    with pytest.raises(ApiError) as refused:
        fmt.parse_request(raw)
    assert refused.value.code == ErrorCode.INVALID_REQUEST
    return refused.value


# --- Request ------------------------------------------------------------------------------
def test_a_plain_request_maps_its_controls():
    request = fmt.parse_request(
        body(
            system="Be brief.",
            temperature=0.2,
            top_p=0.9,
            stop_sequences=["END", "STOP"],
            stream=True,
            metadata={"user_id": "user-42"},
            top_k=5,
        )
    )
    assert request.model == "m/x" and request.max_tokens == 64
    assert request.messages == [
        Message("system", [TextBlock("Be brief.")]),
        Message("user", [TextBlock("Hi")]),
    ]
    assert (request.temperature, request.top_p) == (0.2, 0.9)
    assert request.stop == ["END", "STOP"]
    assert request.stream is True and request.user == "user-42"
    assert request.extra == {"top_k": 5}  # unknown fields pass through; mapped ones do not
    assert request.reasoning is None and request.tool_choice is None and request.tools == []


def test_system_text_blocks_become_one_leading_system_message():
    request = fmt.parse_request(
        body(system=[{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}])
    )
    assert request.messages[0] == Message("system", [TextBlock("Rule one."), TextBlock("Rule two.")])
    assert [m.role for m in request.messages] == ["system", "user"]


def test_an_empty_system_adds_no_message():
    assert [m.role for m in fmt.parse_request(body(system="")).messages] == ["user"]


def test_every_content_block_kind_maps_to_its_canonical_block():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
                {
                    "type": "document",
                    "title": "report.pdf",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
                },
                {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
    ]
    user, assistant = fmt.parse_request(body(messages=messages)).messages
    assert user == Message(
        "user",
        [
            TextBlock("Look:"),
            ImageBlock(url="data:image/png;base64,iVBOR"),
            ImageBlock(url="https://x.test/cat.jpg"),
            FileBlock(filename="report.pdf", file_data="data:application/pdf;base64,JVBER"),
            FileBlock(file_url="https://x.test/a.pdf"),
        ],
    )
    assert assistant == Message(
        "assistant",
        [
            ReasoningBlock(text="Hmm.", signature="sig-1"),
            TextBlock("Checking."),
            ToolCallBlock(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
        ],
    )
    assert json.loads(assistant.content[2].arguments) == {"city": "Paris"}


def test_thinking_without_a_signature_has_none():
    messages = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]},
        {"role": "user", "content": "Q2"},
    ]
    assert fmt.parse_request(body(messages=messages)).messages[1].content == [ReasoningBlock("t", None)]


def test_tool_results_become_tool_messages_and_the_blocks_around_them_keep_their_order():
    content = [
        {"type": "text", "text": "Before."},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "is_error": True,
            "content": [
                {"type": "text", "text": "failed"},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/err.png"}},
            ],
        },
        {"type": "text", "text": "After."},
    ]
    messages = fmt.parse_request(body(messages=[{"role": "user", "content": content}])).messages
    assert messages == [
        Message("user", [TextBlock("Before.")]),
        Message("tool", [ToolResultBlock("toolu_1", [TextBlock("sunny")])]),
        Message(
            "tool",
            [
                ToolResultBlock(
                    "toolu_2", [TextBlock("failed"), ImageBlock(url="https://x.test/err.png")], is_error=True
                )
            ],
        ),
        Message("user", [TextBlock("After.")]),
    ]


def test_a_tool_result_then_text_is_a_tool_message_then_a_user_message():
    content = [
        {"type": "tool_result", "tool_use_id": "toolu_1"},
        {"type": "text", "text": "Now answer."},
    ]
    messages = fmt.parse_request(body(messages=[{"role": "user", "content": content}])).messages
    assert messages == [
        Message("tool", [ToolResultBlock("toolu_1", [])]),
        Message("user", [TextBlock("Now answer.")]),
    ]


def test_tools_keep_their_input_schema():
    tools = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}]
    request = fmt.parse_request(body(tools=tools))
    assert request.tools == [Tool(name="get_weather", description="Weather now", parameters=WEATHER)]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ToolChoice("auto")),
        ({"type": "any"}, ToolChoice("required")),
        ({"type": "none"}, ToolChoice("none")),
        ({"type": "tool", "name": "get_weather"}, ToolChoice("tool", "get_weather")),
    ],
)
def test_tool_choice_forms(choice, expected):
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    assert fmt.parse_request(body(tools=tools, tool_choice=choice)).tool_choice == expected


def test_a_named_tool_choice_needs_its_name():
    assert refusal(body(tool_choice={"type": "tool"})).param == "tool_choice.name"


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, ReasoningControl(budget_tokens=2048, enabled=True)),
        ({"type": "enabled"}, ReasoningControl(enabled=True)),
        ({"type": "disabled"}, ReasoningControl(enabled=False)),
    ],
)
def test_thinking_controls_reasoning(thinking, expected):
    assert fmt.parse_request(body(thinking=thinking)).reasoning == expected


def test_response_format_is_refused_naming_the_field():
    refused = refusal(body(response_format={"type": "json_object"}))
    assert refused.param == "response_format" and refused.message.startswith("response_format: ")


def test_plugins_switch_server_tools_on_with_their_options_and_events(settings):
    settings.IMAGE_GENERATION_BACKEND = ""  # not configured here
    request = fmt.parse_request(body(plugins=[{"id": "web_search", "max_results": 3}, {"id": "datetime"}]))
    assert request.server_tools == (
        ServerToolUse("web_search", {"max_results": 3}),
        ServerToolUse("datetime"),
    )
    assert not request.tool_events and request.extra == {}
    assert fmt.parse_request(body(plugins=[{"id": "pdf", "events": True}])).tool_events
    assert fmt.parse_request(body(plugins=[], hi_tool_events=True)).tool_events
    twice = refusal(body(plugins=[{"id": "datetime"}, {"id": "datetime"}]))
    assert twice.param == "plugins[1].id" and "listed twice" in twice.message
    unconfigured = refusal(body(plugins=[{"id": "image"}]))
    assert unconfigured.param == "plugins[0].id" and "not configured" in unconfigured.message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (body(temperature=1.5), "temperature"),
        (body(max_tokens=0), "max_tokens"),
        (
            body(tool_choice={"type": "any", "disable_parallel_tool_use": "yes"}),
            "tool_choice.disable_parallel_tool_use",
        ),
        (body(thinking={"type": "sometimes"}), "thinking.type"),
    ],
)
def test_a_schema_error_names_the_field(raw, field):
    refused = refusal(raw)
    assert refused.param == field and refused.message.startswith(f"{field}: ")


def test_a_missing_required_field_is_named_in_the_message():
    raw = body()
    del raw["max_tokens"]
    assert "'max_tokens' is a required property" in refusal(raw).message


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


def test_a_redacted_block_sent_back_is_a_redacted_reasoning_block():
    turn = {
        "role": "assistant",
        "content": [{"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "Hi."}],
    }
    hello, again = {"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}
    request = fmt.parse_request(body(messages=[hello, turn, again]))
    assert request.messages[1] == Message(
        "assistant", [ReasoningBlock("", signature="opaque", redacted=True), TextBlock("Hi.")]
    )

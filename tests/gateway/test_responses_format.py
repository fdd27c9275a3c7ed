"""The OpenAI Responses format on its own: request → canonical, events → SSE frames and the response."""

import json

import pytest

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
    ResponseFormat,
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
from gateway.ingress import responses
from gateway.openapi import openapi_document

MODEL = "hyperinfer/sandbox-pro"


def parse(**body):
    return responses.parse_request({"model": MODEL, **body})


def refusal(**body) -> ApiError:
    with pytest.raises(ApiError) as raised:
        parse(**body)
    assert raised.value.code == ErrorCode.INVALID_REQUEST
    return raised.value


# --- Request ------------------------------------------------------------------------------
def test_a_string_input_is_one_user_message_after_the_instructions():
    request = parse(input="Hi there", instructions="Be brief.")
    assert request.messages == [
        Message("system", [TextBlock("Be brief.")]),
        Message("user", [TextBlock("Hi there")]),
    ]
    assert request.model == MODEL and request.stream is False and request.tools == []


def test_message_items_keep_their_roles_and_parts():
    request = parse(
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "system", "content": "Be kind."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,QQ==",
                    },
                    {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "Un chat."}]},
        ]
    )
    assert request.messages == [
        Message("system", [TextBlock("Answer in French.")]),
        Message("system", [TextBlock("Be kind.")]),
        Message(
            "user",
            [
                TextBlock("What is this?"),
                ImageBlock(url="https://example.com/cat.png", detail="low"),
                FileBlock(filename="a.pdf", file_data="data:application/pdf;base64,QQ=="),
                FileBlock(file_url="https://example.com/b.pdf"),
            ],
        ),
        Message("assistant", [TextBlock("Un chat.")]),
    ]


def test_reasoning_text_and_function_calls_of_one_turn_become_one_assistant_message():
    request = parse(
        input=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Two cities."}]},
            {"role": "assistant", "content": "Looking."},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "rainy"},
        ]
    )
    assert request.messages == [
        Message("user", [TextBlock("Weather in Paris and Rome?")]),
        Message(
            "assistant",
            [
                ReasoningBlock(text="Two cities."),
                TextBlock("Looking."),
                ToolCallBlock(id="call_1", name="weather", arguments='{"city":"Paris"}'),
                ToolCallBlock(id="call_2", name="weather", arguments='{"city":"Rome"}'),
            ],
        ),
        Message("tool", [ToolResultBlock(tool_call_id="call_1", content=[TextBlock("sunny")])]),
        Message("tool", [ToolResultBlock(tool_call_id="call_2", content=[TextBlock("rainy")])]),
    ]


def test_a_reasoning_item_without_summary_is_dropped():
    request = parse(input=[{"type": "reasoning"}, {"role": "user", "content": "x"}])
    assert request.messages == [Message("user", [TextBlock("x")])]


def test_function_tools_and_every_tool_choice_form():
    tool = {
        "type": "function",
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    }
    bare = {"type": "function", "name": "now"}
    request = parse(input="x", tools=[tool, bare], tool_choice={"type": "function", "name": "weather"})
    assert request.tools == [
        Tool(
            "weather",
            "Weather of a city",
            {"type": "object", "properties": {"city": {"type": "string"}}},
            strict=True,
        ),
        Tool("now", None, {"type": "object", "properties": {}}),
    ]
    assert request.tool_choice == ToolChoice(mode="tool", name="weather")
    for mode in ("auto", "none", "required"):
        assert parse(input="x", tools=[bare], tool_choice=mode).tool_choice == ToolChoice(mode=mode)
    assert parse(input="x").tool_choice is None


def test_a_built_in_tool_is_a_server_tool_beside_the_function_tools(settings):
    settings.IMAGE_GENERATION_BACKEND = ""
    request = parse(
        input="x", tools=[{"type": "function", "name": "f"}, {"type": "web_search", "max_results": 2}]
    )
    assert [tool.name for tool in request.tools] == ["f"]
    assert request.server_tools == (ServerToolUse("web_search", {"max_results": 2}),)
    assert parse(input="x", tools=[{"type": "datetime", "events": True}]).tool_events
    error = refusal(input="x", tools=[{"type": "function", "name": "f"}, {"type": "image"}])
    assert error.param == "tools[1].type"
    assert "image" in error.message and error.message.startswith("tools[1].type:")


def test_controls_map_to_the_canonical_request():
    request = parse(
        input="x",
        max_output_tokens=64,
        temperature=0.3,
        top_p=0.9,
        reasoning={"effort": "low"},
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}
        },
        store=True,
        stream=True,
        user="user-7",
        seed=11,
    )
    assert (request.max_tokens, request.temperature, request.top_p) == (64, 0.3, 0.9)
    assert request.reasoning == ReasoningControl(effort="low")
    assert request.response_format == ResponseFormat("json_schema", "answer", {"type": "object"}, True)
    assert request.stream is True and request.user == "user-7"
    assert request.extra == {"seed": 11}  # store is accepted and consumed, not passed upstream


def test_text_format_json_object_and_text_and_reasoning_effort_null():
    assert parse(input="x", text={"format": {"type": "json_object"}}).response_format == ResponseFormat(
        "json_object"
    )
    assert parse(input="x", text={"format": {"type": "text"}}).response_format == ResponseFormat("text")
    assert parse(input="x", reasoning={"effort": None}).reasoning is None
    assert parse(input="x", previous_response_id=None).messages == [Message("user", [TextBlock("x")])]


def test_previous_response_id_is_refused_as_the_api_is_stateless():
    error = refusal(input="x", previous_response_id="resp_123")
    assert error.param == "previous_response_id"
    assert "stateless" in error.message and "full" in error.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0]"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({}, None),
    ],
)
def test_a_schema_error_names_the_field(body, param):
    error = refusal(**body)
    assert error.param == param
    if param:
        assert error.message.startswith(f"{param}: ")
    else:
        assert "'input' is a required property" in error.message


def test_an_empty_input_list_is_refused():
    assert refusal(input=[]).param == "input"


def test_the_documented_body_is_the_schema_the_validator_uses():
    operation = openapi_document()["paths"]["/api/v1/responses"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == responses.REQUEST_VALIDATOR.schema
    assert operation["operationId"] == "createResponse"


# --- Response object (the fold) -----------------------------------------------------------
def folded(*events) -> Folded:
    result = Folded()
    for event in events:
        result.add(event)
    return result


def test_the_response_object_lists_reasoning_message_then_function_calls():
    answer = folded(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Think."),
        BlockStart(1, "text"),
        TextDelta(1, "Calling."),
        BlockStart(2, "tool_call", tool_call_id="call_a", tool_name="weather"),
        ToolCallDelta(2, '{"city":'),
        ToolCallDelta(2, '"Paris"}'),
        Finish("tool_calls"),
    )
    usage = Usage(prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=4, reasoning_tokens=2)
    body = responses.response_object(
        request_id="abc", model=MODEL, created=1700, folded=answer, usage=usage, cost_usd=0.0012
    )
    assert body["id"] == "resp_abc" and body["object"] == "response" and body["created_at"] == 1700
    assert body["status"] == "completed" and body["incomplete_details"] is None and body["error"] is None
    assert body["output"] == [
        {"id": "rs_abc_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
        {
            "id": "msg_abc_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
        },
        {
            "id": "fc_abc_2",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_a",
            "name": "weather",
            "arguments": '{"city":"Paris"}',
        },
    ]
    assert body["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
        "cost": 0.0012,
    }


@pytest.mark.parametrize(
    ("reason", "why"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete_with_its_reason(reason, why):
    answer = folded(TextDelta(0, "Hel"), Finish(reason))
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=Usage(3, 1), cost_usd=0.0
    )
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": why}
    assert [item["type"] for item in body["output"]] == ["message"]


# --- Stream -------------------------------------------------------------------------------
def frames_of(chunks: list[bytes]) -> list[dict]:
    """Each frame as its data object, checking the `event:` line names the data's type."""
    events = []
    for chunk in chunks:
        assert chunk.endswith(b"\n\n")
        event_line, data_line = chunk.decode().strip("\n").split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        events.append(data)
    return events


USAGE = Usage(8, 6, reasoning_tokens=2)


def run_stream(*events, usage: Usage = USAGE) -> list[dict]:
    renderer = responses.stream_renderer(request_id="req1", model=MODEL)
    chunks = renderer.start()
    for event in events:
        chunks += renderer.render(event)
    chunks += renderer.finish(usage, 0.5)
    return frames_of(chunks)


def test_a_stream_announces_opens_fills_and_closes_each_item_in_order():
    events = run_stream(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Hm"),
        ReasoningDelta(0, "m."),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, "Hi"),
        TextDelta(1, " you"),
        BlockStart(2, "tool_call", tool_call_id="call_x", tool_name="lookup"),
        ToolCallDelta(2, '{"q":'),
        ToolCallDelta(2, "1}"),
        BlockStop(2),
        Finish("tool_calls"),
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",  # closed because the next block starts
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["id"] == "resp_req1" and created["status"] == "in_progress" and created["output"] == []
    assert events[2]["item"] == {"id": "rs_req1_0", "type": "reasoning", "summary": []}
    assert events[6] == {
        "type": "response.reasoning_summary_text.done",
        "sequence_number": 6,
        "item_id": "rs_req1_0",
        "output_index": 0,
        "summary_index": 0,
        "text": "Hmm.",
    }
    assert events[9]["item"]["status"] == "in_progress" and events[9]["item"]["content"] == []
    assert events[11]["item_id"] == "msg_req1_1" and events[11]["output_index"] == 1
    assert (events[11]["content_index"], events[11]["delta"]) == (0, "Hi")
    assert events[13]["text"] == "Hi you"
    assert events[16]["item"]["call_id"] == "call_x" and events[16]["item"]["arguments"] == ""
    assert events[19]["arguments"] == '{"q":1}' and events[19]["item_id"] == "fc_req1_2"
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [events[8]["item"], events[15]["item"], events[20]["item"]]
    assert [item["id"] for item in completed["output"]] == ["rs_req1_0", "msg_req1_1", "fc_req1_2"]
    assert completed["output"][1]["content"][0]["text"] == "Hi you"
    assert completed["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    assert completed["usage"]["total_tokens"] == 14 and completed["usage"]["cost"] == 0.5


def test_a_stream_cut_by_length_ends_with_response_incomplete():
    events = run_stream(BlockStart(0, "text"), TextDelta(0, "Hel"), Finish("length"))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["type"] == "response.output_item.done"  # the open item is closed first


def test_an_empty_block_yields_no_item():
    events = run_stream(BlockStart(0, "reasoning"), BlockStop(0), BlockStart(1, "text"), BlockStop(1))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["output"] == []


def test_a_thinking_signature_streams_into_the_reasoning_items_encrypted_content():
    events = run_stream(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "Hmm."),
        ReasoningDelta(0, "", signature="sig-1"),
        BlockStop(0),
        Finish("stop"),
    )
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"] == {
        "id": "rs_req1_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Hmm."}],
        "encrypted_content": "anthropic.thinking:sig-1",
    }
    assert events[-1]["response"]["output"] == [done["item"]]


def test_a_redacted_block_is_a_reasoning_item_with_no_summary_and_its_data():
    events = run_stream(
        BlockStart(0, "reasoning"), ReasoningDelta(0, "", signature="opaque", redacted=True), BlockStop(0)
    )
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[3]["item"]["summary"] == []
    assert events[3]["item"]["encrypted_content"] == "anthropic.redacted:opaque"


def test_the_fold_keeps_the_signature_and_the_request_side_reads_it_back():
    answer = folded(
        BlockStart(0, "reasoning"), ReasoningDelta(0, "Think."), ReasoningDelta(0, "", signature="s9")
    )
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=USAGE, cost_usd=0.0
    )
    [item] = body["output"]
    request = parse(input=[{"role": "user", "content": "Hi"}, item, {"role": "user", "content": "More"}])
    assert request.messages[1] == Message("assistant", [ReasoningBlock("Think.", signature="s9")])


def test_a_redacted_item_and_a_foreign_encrypted_content_read_back():
    redacted = {"type": "reasoning", "summary": [], "encrypted_content": "anthropic.redacted:xyz"}
    foreign = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-openai-state"}
    request = parse(input=[redacted, foreign, {"role": "user", "content": "Hi"}])
    assert request.messages[0] == Message(
        "assistant", [ReasoningBlock("", signature="xyz", redacted=True)]
    )  # the foreign state means nothing to any upstream of ours, and its empty summary carries nothing
    assert [m.role for m in request.messages] == ["assistant", "user"]


def test_an_error_mid_stream_is_an_error_event_then_response_failed():
    renderer = responses.stream_renderer(request_id="req2", model=MODEL)
    chunks = renderer.start() + renderer.render(BlockStart(0, "text")) + renderer.render(TextDelta(0, "Hi"))
    chunks += renderer.error(ErrorCode.PROVIDER_RATE_LIMIT, "slow down")
    events = frames_of(chunks)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-2] == {
        "type": "error",
        "sequence_number": len(events) - 2,
        "code": "provider_rate_limit",
        "message": "slow down",
        "param": None,
    }
    failed = events[-1]["response"]
    assert events[-1]["type"] == "response.failed" and failed["status"] == "failed"
    assert failed["error"] == {"code": "provider_rate_limit", "message": "slow down"}
    assert failed["output"][0]["id"] == "msg_req2_0" and failed["output"][0]["status"] == "incomplete"
    assert not any(chunk.startswith(b"data: [DONE]") for chunk in chunks)


def test_errors_use_the_openai_envelope():
    body = responses.error_body(ErrorCode.INVALID_API_KEY, "bad key", "rid")
    assert body == {
        "error": {
            "message": "bad key",
            "type": "authentication_error",
            "code": "invalid_api_key",
            "param": None,
            "request_id": "rid",
        }
    }


def test_each_reasoning_block_is_an_item_of_its_own_with_its_state():
    answer = folded(
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "", signature="opaque", redacted=True),
        BlockStart(1, "reasoning"),
        ReasoningDelta(1, "Hmm."),
        ReasoningDelta(1, "", signature="sig-2"),
        BlockStart(2, "text"),
        TextDelta(2, "Hi."),
    )
    body = responses.response_object(
        request_id="r", model=MODEL, created=1, folded=answer, usage=USAGE, cost_usd=0.0
    )
    assert [(item["id"], item["summary"], item.get("encrypted_content")) for item in body["output"][:2]] == [
        ("rs_r_0", [], "anthropic.redacted:opaque"),
        ("rs_r_1", [{"type": "summary_text", "text": "Hmm."}], "anthropic.thinking:sig-2"),
    ]
    assert body["output"][2]["type"] == "message"

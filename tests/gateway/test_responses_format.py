"""The OpenAI Responses format on its own: the request → canonical, and its schema as documented.

What an answer becomes (events → SSE frames, the response object) is in test_responses_format_answers.py."""

import pytest

from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ResponseFormat,
    ServerToolUse,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolChoice,
    ToolResultBlock,
)
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
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({}, "input"),
    ],
)
def test_a_schema_error_names_the_field(body, param):
    error = refusal(**body)
    assert error.param == param and error.message.startswith(f"{param}: ")
    if not body:
        assert "'input' is a required property" in error.message


def test_an_empty_input_list_is_refused():
    assert refusal(input=[]).param == "input"


def test_the_documented_body_is_the_schema_the_validator_uses():
    operation = openapi_document()["paths"]["/api/v1/responses"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == responses.REQUEST_VALIDATOR.schema
    assert operation["operationId"] == "createResponse"

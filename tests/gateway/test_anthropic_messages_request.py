"""The Anthropic Messages ingress format's requests on their own: a body → the canonical request, or a refusal
naming the field (tests/gateway/test_anthropic_messages_format.py: the answers)."""

import json

import pytest

from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningControl,
    ServerToolUse,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolChoice,
    ToolResultBlock,
)
from gateway.ingress import anthropic_messages as fmt

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


def test_a_missing_required_field_is_named_in_the_message_and_the_param():
    raw = body()
    del raw["max_tokens"]
    refused = refusal(raw)
    assert refused.param == "max_tokens"
    assert refused.message == "max_tokens: 'max_tokens' is a required property"
    nested = body(messages=[{"role": "user", "content": [{"type": "tool_result"}]}])
    assert refusal(nested).param == "messages[0].content[0].tool_use_id"


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

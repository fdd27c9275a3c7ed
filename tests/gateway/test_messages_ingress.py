"""POST /api/v1/messages end to end on the sandbox model: the official Anthropic SDK against the real gateway,
and its errors in the Anthropic envelope. Through fake upstreams: test_messages_ingress_upstreams.py and
test_messages_ingress_prompt_caching.py."""

import anthropic
import httpx
import pytest

from billing.selectors import account_for
from tests.gateway.conftest import settled_generation
from tests.gateway.messages_ingress_client import WEATHER_TOOL, client_for, user

SANDBOX = "hyperinfer/sandbox-pro"  # $0.60/M prompt, $2.50/M completion


def sandbox_cost(prompt_tokens: int, completion_tokens: int) -> int:
    """Micro-USD at the sandbox's prices, rounded up once."""
    return -(-(prompt_tokens * 60 + completion_tokens * 250) // 100)


# --- The sandbox model --------------------------------------------------------------------------------
def test_a_message_comes_back_parsed_and_is_billed_its_cost(gateway_url, funded_key):
    workspace, key = funded_key
    before = account_for(workspace_id=workspace.pk).balance_micro_usd
    raw = client_for(gateway_url, key).messages.with_raw_response.create(
        model=SANDBOX, max_tokens=200, system="You are terse.", messages=[user("Say hello")]
    )
    message = raw.parse()
    request_id = raw.headers["x-request-id"]

    assert isinstance(message, anthropic.types.Message)
    assert message.id == f"msg_{request_id}"
    assert message._request_id == request_id  # the SDK reads Anthropic's own `request-id` header
    assert (message.type, message.role, message.model) == ("message", "assistant", SANDBOX)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hello from the HyperInfer sandbox. You said: Say hello"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert usage.output_tokens == 9 and usage.input_tokens > 0
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)

    generation = settled_generation(request_id)
    assert generation.ingress_format == "anthropic_messages" and generation.status == "completed"
    assert (generation.tokens_prompt, generation.tokens_completion) == (usage.input_tokens, 9)
    assert generation.cost_micro_usd == sandbox_cost(usage.input_tokens, 9)
    assert round(usage.model_extra["cost"] * 1_000_000) == generation.cost_micro_usd
    assert before - account_for(workspace_id=workspace.pk).balance_micro_usd == generation.cost_micro_usd


def test_a_stream_parses_in_the_sdk_and_its_final_message_has_the_text_and_usage(gateway_url, funded_key):
    _, key = funded_key
    with client_for(gateway_url, key).messages.stream(
        model=SANDBOX, max_tokens=200, messages=[user("Stream please")]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    texts = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert "".join(texts) == "Hello from the HyperInfer sandbox. You said: Stream please"
    assert len(texts) == 9  # streamed piece by piece, not buffered
    assert final.content[0].text == "".join(texts)
    assert final.stop_reason == "end_turn"
    request_id = final.id.removeprefix("msg_")
    generation = settled_generation(request_id)
    assert generation.streamed and generation.ingress_format == "anthropic_messages"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        generation.tokens_prompt,
        generation.tokens_completion,
    )
    assert final.usage.output_tokens == 9
    assert generation.cost_micro_usd == sandbox_cost(generation.tokens_prompt, 9)
    # The cost is known at the end only: message_delta has it, and message_start has no 0 that would stay.
    assert "cost" not in (events[0].message.usage.model_extra or {})
    delta = next(event for event in events if event.type == "message_delta")
    assert round(delta.usage.model_extra["cost"] * 1_000_000) == generation.cost_micro_usd


def test_a_tool_round_trip(gateway_url, funded_key):
    _, key = funded_key
    client = client_for(gateway_url, key)
    question = user("What is the weather in Paris?")
    first = client.messages.create(
        model=SANDBOX, max_tokens=200, messages=[question], tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.name) == ("tool_use", "get_weather")
    assert call.id == "call_mock_0"
    assert call.input == {"input": "Hello from the HyperInfer sandbox. You s"}

    second = client.messages.create(
        model=SANDBOX,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},  # replayed as the SDK parsed it
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert (
        second.content[0].text == "Hello from the HyperInfer sandbox. You said: What is the weather in Paris?"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_thinking_gives_a_thinking_block_before_the_text(gateway_url, funded_key, stream):
    _, key = funded_key
    options = {"model": SANDBOX, "max_tokens": 2000, "messages": [user("Think first")]}
    options["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    client = client_for(gateway_url, key)
    if stream:
        with client.messages.stream(**options) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**options)
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user wants a short, friendly answer."
    assert thinking.signature == ""  # the sandbox is not Anthropic: no signature to give
    assert text.text == "Hello from the HyperInfer sandbox. You said: Think first"
    generation = settled_generation(message.id.removeprefix("msg_"))
    assert generation.tokens_reasoning == 7 and message.usage.output_tokens == 7 + 9


# --- Errors in the Anthropic envelope -----------------------------------------------------------------
def test_a_bad_key_is_an_authentication_error_with_the_taxonomy_code(gateway_url):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client_for(gateway_url, "hi-wrong").messages.create(
            model=SANDBOX, max_tokens=10, messages=[user("x")]
        )
    assert refused.value.status_code == 401
    body = refused.value.body
    assert body["type"] == "error" and body["request_id"] == refused.value.response.headers["x-request-id"]
    assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "invalid_api_key"


def test_a_schema_error_is_a_400_naming_the_field(gateway_url, funded_key):
    _, key = funded_key
    with pytest.raises(anthropic.BadRequestError) as refused:
        client_for(gateway_url, key).messages.create(
            model=SANDBOX, max_tokens=10, messages=[{"role": "system", "content": "x"}]
        )
    error = refused.value.body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert error["message"].startswith("messages[0].role: ")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"plugins": [{"id": "pdf"}, {"id": "pdf"}]}, "plugins[1].id"),
        ({"plugins": [{"id": "nope"}]}, "plugins[0].id"),
    ],
)
def test_unsupported_fields_are_refused_naming_them(gateway_url, funded_key, extra, field):
    _, key = funded_key
    response = httpx.post(
        f"{gateway_url}/api/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": SANDBOX, "max_tokens": 10, "messages": [user("x")], **extra},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith(field)


def test_an_unknown_model_is_an_invalid_request(gateway_url, funded_key):
    _, key = funded_key
    with pytest.raises(anthropic.NotFoundError) as refused:
        client_for(gateway_url, key).messages.create(model="nope/nope", max_tokens=10, messages=[user("x")])
    assert refused.value.body["error"]["message"].startswith("model: unknown model")

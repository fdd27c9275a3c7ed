"""POST /api/v1/messages end to end: the official Anthropic SDK against the real gateway, on the sandbox
model and through fake upstreams (asserting what the upstream received and what the SDK got back)."""

import json

import anthropic
import httpx
import pytest

from billing.selectors import account_for
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.gateway.conftest import serve_model_from, settled_generation

SANDBOX = "hyperinfer/sandbox-pro"  # $0.60/M prompt, $2.50/M completion
KEY = "test-key"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
THOUGHT = "The user wants the weather; answer briefly."
SIGNATURE = "EqQBCkYIARgCIkD-real-signature"


def client_for(url: str, key: str) -> anthropic.Anthropic:
    # The SDK appends /v1/messages to its base URL.
    return anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)


def sandbox_cost(prompt_tokens: int, completion_tokens: int) -> int:
    """Micro-USD at the sandbox's prices, rounded up once."""
    return -(-(prompt_tokens * 60 + completion_tokens * 250) // 100)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


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


# --- Through an Anthropic upstream --------------------------------------------------------------------
@pytest.fixture
def anthropic_upstream(gateway_url, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    scenario = AnthropicScenario(
        text="Sunny.", thinking=THOUGHT, signature=SIGNATURE, cache_read_input_tokens=5, api_key=KEY
    )
    with anthropic_fake(scenario) as fake:
        serve_model_from("test/claude", [("anthropic", fake.url + "/v1")])
        yield fake


def test_an_anthropic_upstream_keeps_the_thinking_signature_both_ways(
    gateway_url, funded_key, anthropic_upstream
):
    fake = anthropic_upstream
    client = client_for(gateway_url, funded_key[1])
    first = client.messages.create(
        model="test/claude",
        max_tokens=3000,
        system="Be brief.",
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[user("Weather?")],
        metadata={"user_id": "end-user-7"},
        stop_sequences=["###"],
    )
    sent = fake.requests[0].body
    assert sent["system"] == "Be brief." and sent["messages"] == [user_blocks("Weather?")]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and sent["max_tokens"] == 3000
    assert sent["metadata"] == {"user_id": "end-user-7"} and sent["stop_sequences"] == ["###"]
    assert sent["model"] == "fake-model" and fake.requests[0].headers["x-api-key"] == KEY

    thinking, text = first.content
    assert (thinking.thinking, thinking.signature, text.text) == (THOUGHT, SIGNATURE, "Sunny.")
    # Anthropic usage semantics survive the round trip: input tokens exclude the cache reads.
    assert (first.usage.input_tokens, first.usage.cache_read_input_tokens, first.usage.output_tokens) == (
        12,
        5,
        7,
    )
    generation = settled_generation(first.id.removeprefix("msg_"))
    assert (generation.tokens_prompt, generation.tokens_cached_prompt) == (17, 5)

    client.messages.create(
        model="test/claude",
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[
            user("Weather?"),
            {"role": "assistant", "content": first.content},
            user("And tomorrow?"),
        ],
    )
    replayed = fake.requests[1].body["messages"][1]
    assert replayed == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE},
            {"type": "text", "text": "Sunny."},
        ],
    }


def user_blocks(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def test_an_anthropic_upstream_streams_its_signature_through(gateway_url, funded_key, anthropic_upstream):
    with client_for(gateway_url, funded_key[1]).messages.stream(
        model="test/claude",
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[user("Weather?")],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == [
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        *["text_delta"] * 3,
    ]
    assert deltas[2].signature == SIGNATURE
    thinking, text = final.content
    assert (thinking.thinking, thinking.signature, text.text) == (THOUGHT, SIGNATURE, "Sunny.")
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        12,
        5,
        7,
    )


def test_a_tool_call_from_an_anthropic_upstream_and_its_result(gateway_url, funded_key, anthropic_upstream):
    fake = anthropic_upstream
    fake.scenarios = [
        AnthropicScenario(text="", tool_use=ToolUse("get_weather", {"city": "Paris"}, id="toolu_P"))
    ]
    client = client_for(gateway_url, funded_key[1])
    first = client.messages.create(
        model="test/claude",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[user("Weather in Paris?")],
    )
    assert fake.requests[0].body["tools"] == [WEATHER_TOOL]
    assert fake.requests[0].body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    [call] = first.content
    assert (call.id, call.name, call.input, first.stop_reason) == (
        "toolu_P",
        "get_weather",
        {"city": "Paris"},
        "tool_use",
    )

    fake.scenarios = [AnthropicScenario(text="It is sunny.")]
    second = client.messages.create(
        model="test/claude",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            user("Weather in Paris?"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_P", "content": "sunny", "is_error": False},
                    {"type": "text", "text": "Answer in one line."},
                ],
            },
        ],
    )
    assert second.content[0].text == "It is sunny."
    assert fake.requests[1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_P", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_P",
                    "content": [{"type": "text", "text": "sunny"}],
                },
                {"type": "text", "text": "Answer in one line."},
            ],
        },
    ]


def test_an_upstream_error_after_the_first_byte_is_an_error_event(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    with anthropic_fake(AnthropicScenario(text="abcdef", failure="error_event", api_key=KEY)) as fake:
        serve_model_from("test/breaks", [("anthropic", fake.url + "/v1")])
        with httpx.stream(
            "POST",
            f"{gateway_url}/api/v1/messages",
            headers={"x-api-key": funded_key[1]},
            json={"model": "test/breaks", "max_tokens": 50, "stream": True, "messages": [user("x")]},
        ) as response:
            lines = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert lines[-2] == "event: error"
    error = json.loads(lines[-1].removeprefix("data: "))
    assert error == {
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "code": "provider_overloaded",
            "message": "The model's provider is overloaded; try again shortly.",
        },
        "request_id": response.headers["x-request-id"],
    }
    generation = settled_generation(response.headers["x-request-id"])
    assert generation.status == "failed" and generation.error_code == "provider_overloaded"


# --- Through OpenAI-dialect upstreams -----------------------------------------------------------------
def test_a_cerebras_upstream_gets_chat_completions_and_the_sdk_gets_tool_use(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    call = FakeToolCall("get_weather", '{"city": "Paris"}', id="call_c1")
    with openai_fake(
        "cerebras", Scenario(text="", tool_calls=[call], prompt_tokens=30, cached_tokens=10), api_key=KEY
    ) as fake:
        serve_model_from("test/cerebras", [("cerebras", fake.base_url)])
        client = client_for(gateway_url, funded_key[1])
        first = client.messages.create(
            model="test/cerebras",
            max_tokens=100,
            system=[{"type": "text", "text": "Be brief."}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            # service_tier has no Chat Completions equivalent, and dropping it is harmless
            extra_body={"temperature": 0.3, "service_tier": "auto"},
            messages=[user("Weather in Paris?")],
        )
        sent = fake.chat_requests[0].body
        fake.scenario = Scenario(text="Sunny in Paris.")
        second = client.messages.create(
            model="test/cerebras",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            messages=[
                user("Weather in Paris?"),
                {"role": "assistant", "content": first.content},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "call_c1", "content": "sunny"}],
                },
            ],
        )
        second_sent = fake.chat_requests[1].body

    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == "required" and sent["temperature"] == 0.3
    assert sent["parallel_tool_calls"] is False and "service_tier" not in sent
    assert sent["max_completion_tokens"] == 100
    [tool_use] = first.content
    assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == (
        "tool_use",
        "call_c1",
        "get_weather",
        {"city": "Paris"},
    )
    assert first.stop_reason == "tool_use"
    assert (first.usage.input_tokens, first.usage.cache_read_input_tokens) == (20, 10)

    assistant, tool = second_sent["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == "call_c1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert (
        tool["role"] == "tool"
        and tool["tool_call_id"] == "call_c1"
        and "sunny" in json.dumps(tool["content"])
    )
    assert second.content[0].text == "Sunny in Paris." and second.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_fireworks_upstream_reasons_into_a_thinking_block(gateway_url, funded_key, monkeypatch, stream):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    with openai_fake("fireworks", Scenario(text="Sunny.", reasoning=THOUGHT), api_key=KEY) as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        options = {
            "model": "test/fireworks",
            "max_tokens": 3000,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [user("Weather?")],
        }
        client = client_for(gateway_url, funded_key[1])
        if stream:
            with client.messages.stream(**options) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**options)
        sent = fake.chat_requests[0].body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["messages"] == [{"role": "user", "content": "Weather?"}]
    thinking, text = message.content
    assert (thinking.thinking, thinking.signature, text.text) == (THOUGHT, "", "Sunny.")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 7)


# --- Prompt caching ---------------------------------------------------------------------------------------
CACHE = {"type": "ephemeral"}


def cached_request(model: str) -> dict:
    return {
        "model": model,
        "max_tokens": 100,
        "system": [{"type": "text", "text": "A long, stable preamble.", "cache_control": CACHE}],
        "tools": [{**WEATHER_TOOL, "cache_control": CACHE}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?", "cache_control": CACHE}]}
        ],
    }


def test_cache_breakpoints_reach_anthropic_and_its_cache_figures_come_back(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    scenario = AnthropicScenario(
        text="Sunny.",
        input_tokens=4,
        cache_read_input_tokens=900,
        cache_creation_input_tokens=100,
        api_key=KEY,
    )
    with anthropic_fake(scenario) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        message = client_for(gateway_url, funded_key[1]).messages.create(**cached_request("test/anthropic"))
    sent = fake.requests[0].body
    assert sent["system"] == [{"type": "text", "text": "A long, stable preamble.", "cache_control": CACHE}]
    assert sent["tools"][0]["cache_control"] == CACHE
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "Weather?", "cache_control": CACHE}]
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        4,
        900,
        100,
    )
    generation = settled_generation(message.id.removeprefix("msg_"))
    assert (generation.tokens_prompt, generation.tokens_cached_prompt) == (1004, 900)


def test_cache_breakpoints_are_dropped_for_an_openai_dialect(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    with openai_fake("fireworks", Scenario(text="Sunny."), api_key=KEY) as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        message = client_for(gateway_url, funded_key[1]).messages.create(**cached_request("test/fireworks"))
    sent = fake.chat_requests[0].body
    assert "cache_control" not in json.dumps(sent)
    assert sent["messages"][0] == {"role": "system", "content": "A long, stable preamble."}
    assert message.content[0].text == "Sunny."

"""POST /api/v1/messages through fake upstreams, Anthropic and OpenAI-dialect: the official Anthropic SDK
against the real gateway, asserting what the upstream received and what the SDK got back."""

import json

import httpx
import pytest

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.messages_ingress_client import KEY, WEATHER_TOOL, client_for, user

THOUGHT = "The user wants the weather; answer briefly."
SIGNATURE = "EqQBCkYIARgCIkD-real-signature"


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

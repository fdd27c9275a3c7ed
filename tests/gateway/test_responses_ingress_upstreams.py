"""POST /api/v1/responses on fake upstreams of two other dialects, Fireworks and Anthropic: the official
OpenAI SDK against the real gateway, asserting what the upstreams were sent and what the SDK got back."""

import json

import httpx
from openai.types.responses import ResponseErrorEvent, ResponseFailedEvent

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.responses_ingress_client import WEATHER_TOOL, client_for

KEY = "test-key"


# --- Other upstream dialects --------------------------------------------------------------
def test_a_fireworks_upstream_with_reasoning_and_a_tool_call(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    scenario = Scenario(
        text="Let me check.",
        reasoning="Need the weather tool.",
        tool_calls=[FakeToolCall("get_weather", '{"city": "Paris"}', id="call_fw_1")],
        prompt_tokens=20,
        completion_tokens=11,
    )
    with openai_fake("fireworks", scenario, api_key=KEY) as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        client = client_for(gateway_url, key)
        response = client.responses.create(
            model="test/fireworks",
            instructions="You are a weather bot.",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            ],
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            max_output_tokens=200,
            reasoning={"effort": "high"},
        )
        with client.responses.stream(
            model="test/fireworks", input="Again", tools=[WEATHER_TOOL], reasoning={"effort": "high"}
        ) as stream:
            events = list(stream)
            streamed = stream.get_final_response()

    sent = fake.chat_requests[0].body
    # The first response was not streamed: the whole answer was asked for (ADR 0019); the second streamed.
    assert sent["model"] == "fake-model" and sent["stream"] is False
    assert fake.chat_requests[1].body["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert sent["tool_choice"] == "auto" and sent["max_tokens"] == 200 and sent["reasoning_effort"] == "high"

    reasoning, message, call = response.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Need the weather tool."
    assert message.type == "message" and response.output_text == "Let me check."
    assert call.type == "function_call" and (call.call_id, call.name) == ("call_fw_1", "get_weather")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 11)
    generation = settled_generation(response.id.removeprefix("resp_"))
    assert generation.provider == "test-fireworks-0" and generation.cost_micro_usd == 20 * 1 + 11 * 2

    assert [item.type for item in streamed.output] == ["reasoning", "message", "function_call"]
    assert [e.item.type for e in events if e.type == "response.output_item.done"] == [
        "reasoning",
        "message",
        "function_call",
    ]
    assert streamed.output[2].arguments == '{"city": "Paris"}' and streamed.output_text == "Let me check."
    assert fake.chat_requests[1].body["messages"] == [{"role": "user", "content": "Again"}]


def test_an_anthropic_upstream_with_thinking_and_a_tool_round_trip(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    calls = AnthropicScenario(
        text="Checking.",
        thinking="Use the tool.",
        tool_use=ToolUse("get_weather", {"city": "Rome"}, id="toolu_9"),
        api_key=KEY,
        input_tokens=30,
        output_tokens=15,
    )
    answers = AnthropicScenario(text="It is sunny in Rome.", api_key=KEY)
    with anthropic_fake(calls, answers) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        client = client_for(gateway_url, key)
        first = client.responses.create(
            model="test/anthropic",
            instructions="Answer briefly.",
            input="Weather in Rome?",
            tools=[WEATHER_TOOL],
            tool_choice="required",
            reasoning={"effort": "low"},
            max_output_tokens=500,
        )
        call = first.output[-1]
        with client.responses.stream(
            model="test/anthropic",
            instructions="Answer briefly.",
            tools=[WEATHER_TOOL],
            input=[
                {"role": "user", "content": "Weather in Rome?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
            ],
        ) as stream:
            events = list(stream)
            second = stream.get_final_response()

    sent_first, sent_second = (request.body for request in fake.requests)
    assert sent_first["system"] == "Answer briefly."
    assert sent_first["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Rome?"}]}
    ]
    assert sent_first["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather of a city",
            "input_schema": WEATHER_TOOL["parameters"],
        }
    ]
    assert sent_first["tool_choice"] == {"type": "any"}
    assert sent_first["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent_first["max_tokens"] == 500 + 1024  # the thinking budget is added: the answer keeps its room

    assert [item.type for item in first.output] == ["reasoning", "message", "function_call"]
    assert first.output[0].summary[0].text == "Use the tool."
    assert first.output_text == "Checking."
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_9",
        "get_weather",
        {"city": "Rome"},
    )
    assert (first.usage.input_tokens, first.usage.output_tokens) == (30, 15)

    # The second turn: the call and its result as Anthropic tool_use / tool_result blocks, turns alternating.
    assert [m["role"] for m in sent_second["messages"]] == ["user", "assistant", "user"]
    assert sent_second["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}
    ]
    [result] = sent_second["messages"][2]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_9"
    assert result["content"] == [{"type": "text", "text": "sunny"}]
    assert second.output_text == "It is sunny in Rome."
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "It is sunny in Rome." and events[-1].type == "response.completed"
    generation = settled_generation(second.id.removeprefix("resp_"))
    assert generation.ingress_format == "responses" and generation.provider == "test-anthropic-0"


def test_sending_the_output_back_replays_anthropic_thinking_with_its_signature(
    gateway_url, funded_key, monkeypatch
):
    """The SDK's own pattern, `input += response.output`: its items come back with their ids and statuses,
    and the reasoning item's encrypted_content brings the thinking signature back to Anthropic."""
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    calls = AnthropicScenario(
        text="Checking.",
        thinking="Use the tool.",
        signature="sig-abc",
        tool_use=ToolUse("get_weather", {"city": "Rome"}, id="toolu_7"),
        api_key=KEY,
    )
    answers = AnthropicScenario(text="Sunny.", thinking="Done.", api_key=KEY)
    options = {"model": "test/anthropic", "tools": [WEATHER_TOOL], "reasoning": {"effort": "low"}}
    with anthropic_fake(calls, answers) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        client = client_for(gateway_url, key)
        conversation: list = [{"role": "user", "content": "Weather in Rome?"}]
        with client.responses.stream(input=conversation, tool_choice="required", **options) as stream:
            events = list(stream)
            first = stream.get_final_response()
        [call] = [item for item in first.output if item.type == "function_call"]
        conversation += first.output
        conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
        second = client.responses.create(input=conversation, **options)

    [reasoning_done] = [
        e.item for e in events if e.type == "response.output_item.done" and e.item.type == "reasoning"
    ]
    assert reasoning_done.encrypted_content == "anthropic.thinking:sig-abc"
    assert first.output[0].encrypted_content == "anthropic.thinking:sig-abc"
    sent_second = fake.requests[1].body
    assert sent_second["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-abc"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert sent_second["messages"][2]["content"][0]["tool_use_id"] == "toolu_7"
    assert sent_second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert second.output_text == "Sunny." and second.output[0].summary[0].text == "Done."


def test_a_redacted_thinking_block_round_trips_as_opaque_reasoning(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    first_turn = AnthropicScenario(text="Hi.", redacted_thinking="opaque-data", api_key=KEY)
    with anthropic_fake(first_turn, AnthropicScenario(text="Again.", api_key=KEY)) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        client = client_for(gateway_url, key)
        first = client.responses.create(model="test/anthropic", input="Hello")
        reasoning = first.output[0]
        assert reasoning.type == "reasoning" and reasoning.summary == []
        assert reasoning.encrypted_content == "anthropic.redacted:opaque-data"
        again = [{"role": "user", "content": "Hello"}, *first.output, {"role": "user", "content": "Again"}]
        client.responses.create(model="test/anthropic", input=again)
    assert fake.requests[1].body["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "opaque-data"},
        {"type": "text", "text": "Hi."},
    ]


def test_an_upstream_error_mid_stream_is_an_error_event_then_response_failed(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure="stream_error"), api_key=KEY) as fake:
        serve_model_from("test/midstream", [("cerebras", fake.base_url)])
        events = list(
            client_for(gateway_url, key).responses.create(model="test/midstream", input="x", stream=True)
        )
        with httpx.stream(
            "POST", f"{gateway_url}/api/v1/responses", headers={"Authorization": f"Bearer {key}"},
            json={"model": "test/midstream", "stream": True, "input": "x"},
        ) as raw:  # fmt: skip
            lines = [line for line in raw.iter_lines() if line]

    error, failed = events[-2:]
    assert isinstance(error, ResponseErrorEvent)
    assert error.code == "provider_rate_limit"
    assert error.message == "The model's provider is rate-limiting requests; try again shortly."
    assert isinstance(failed, ResponseFailedEvent) and failed.response.status == "failed"
    assert failed.response.error.code == "provider_rate_limit"
    assert events[0].type == "response.created" and "response.completed" not in [e.type for e in events]
    assert lines[-2] == "event: response.failed" and lines[-1].startswith('data: {"type":"response.failed"')
    assert not any(line.startswith("data: [DONE]") for line in lines)
    generation = settled_generation(failed.response.id.removeprefix("resp_"))
    assert generation.status == "failed" and generation.error_code == "provider_rate_limit"

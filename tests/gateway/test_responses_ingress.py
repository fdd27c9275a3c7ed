"""POST /api/v1/responses end to end on the sandbox model: the official OpenAI SDK against the real gateway,
and its errors in the OpenAI envelope. On fake upstreams of two other dialects:
test_responses_ingress_upstreams.py."""

import json

import httpx
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseTextDeltaEvent,
)

from billing.selectors import account_for
from tests.gateway.conftest import settled_generation
from tests.gateway.responses_ingress_client import WEATHER_TOOL, client_for

MODEL = "hyperinfer/sandbox-pro"  # $0.60/M prompt, $2.50/M completion
SANDBOX_REASONING = "The user wants a short, friendly answer."


def sandbox_cost(input_tokens: int, output_tokens: int) -> int:
    """Micro-USD at the sandbox's prices, rounded up once."""
    return -(-(input_tokens * 60 + output_tokens * 250) // 100)


# --- The sandbox model --------------------------------------------------------------------
def test_a_response_is_parsed_by_the_sdk_and_billed_as_recorded(gateway_url, funded_key):
    workspace, key = funded_key
    before = account_for(workspace_id=workspace.pk).balance_micro_usd
    raw = client_for(gateway_url, key).responses.with_raw_response.create(
        model=MODEL, input="Say hello", instructions="Be brief."
    )
    response = raw.parse()
    request_id = raw.headers["x-request-id"]

    assert isinstance(response, Response)
    assert response.id == f"resp_{request_id}" and response.object == "response"
    assert response.status == "completed" and response.error is None and response.incomplete_details is None
    assert response.model == MODEL
    assert response.output_text == "Hello from the HyperInfer sandbox. You said: Say hello"
    [message] = response.output
    assert isinstance(message, ResponseOutputMessage)
    assert (
        message.id == f"msg_{request_id}_0" and message.role == "assistant" and message.status == "completed"
    )
    usage = response.usage
    assert usage.output_tokens == len(response.output_text.split(" ")) == 9
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0

    generation = settled_generation(request_id)
    assert generation.ingress_format == "responses" and generation.status == "completed"
    assert (generation.tokens_prompt, generation.tokens_completion) == (usage.input_tokens, 9)
    assert generation.cost_micro_usd == sandbox_cost(usage.input_tokens, 9)
    assert generation.cost_micro_usd == round(usage.model_extra["cost"] * 1_000_000)
    assert before - account_for(workspace_id=workspace.pk).balance_micro_usd == generation.cost_micro_usd


def test_a_stream_parses_into_typed_events_whose_deltas_make_the_answer(gateway_url, funded_key):
    _, key = funded_key
    with client_for(gateway_url, key).responses.stream(model=MODEL, input="Stream please") as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event for event in events if isinstance(event, ResponseTextDeltaEvent)]
    text = "".join(event.delta for event in deltas)
    assert text == "Hello from the HyperInfer sandbox. You said: Stream please"
    assert deltas[-1].snapshot == text  # the SDK's own accumulation agrees
    assert types.count("response.output_item.added") == types.count("response.output_item.done") == 1
    assert types.index("response.output_text.done") < types.index("response.output_item.done")
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.output_text == text and final.output_text == text
    assert completed.response.usage.output_tokens == 9

    request_id = final.id.removeprefix("resp_")
    generation = settled_generation(request_id)
    assert generation.streamed and generation.ingress_format == "responses"
    assert generation.tokens_completion == 9
    assert generation.cost_micro_usd == round(completed.response.usage.model_extra["cost"] * 1_000_000)


def test_a_tool_call_round_trip_in_two_turns(gateway_url, funded_key):
    _, key = funded_key
    client = client_for(gateway_url, key)
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.responses.create(
        model=MODEL, input=[question], tools=[WEATHER_TOOL], tool_choice="required"
    )
    [call] = first.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "get_weather" and call.status == "completed"
    assert call.id == f"fc_{first.id.removeprefix('resp_')}_0" and call.call_id.startswith("call_mock_")
    assert json.loads(call.arguments) == {"input": "Hello from the HyperInfer sandbox. You s"}
    assert first.output_text == "" and first.status == "completed"

    second = client.responses.create(
        model=MODEL,
        tools=[WEATHER_TOOL],
        input=[
            question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'},
        ],
    )
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text == "Hello from the HyperInfer sandbox. You said: Weather in Paris?"
    assert settled_generation(second.id.removeprefix("resp_")).ingress_format == "responses"


def test_a_streamed_tool_call_carries_its_arguments(gateway_url, funded_key):
    _, key = funded_key
    with client_for(gateway_url, key).responses.stream(
        model=MODEL,
        input="Weather?",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done.arguments == arguments and json.loads(arguments) == {
        "input": "Hello from the HyperInfer sandbox. You s"
    }
    [call] = final.output
    assert call.type == "function_call" and call.name == "get_weather" and call.arguments == arguments


def test_reasoning_comes_back_as_a_reasoning_item_with_its_summary(gateway_url, funded_key):
    _, key = funded_key
    client = client_for(gateway_url, key)
    response = client.responses.create(model=MODEL, input="Think first", reasoning={"effort": "low"})
    reasoning, message = response.output
    assert isinstance(reasoning, ResponseReasoningItem)
    assert [(part.type, part.text) for part in reasoning.summary] == [("summary_text", SANDBOX_REASONING)]
    assert message.type == "message" and response.output_text.endswith("You said: Think first")
    assert response.usage.output_tokens_details.reasoning_tokens == len(SANDBOX_REASONING.split(" ")) == 7

    stream = client.responses.create(
        model=MODEL, input="Think first", reasoning={"effort": "low"}, stream=True
    )
    events = list(stream)
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == SANDBOX_REASONING
    added = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].summary[0].text == SANDBOX_REASONING


def test_a_length_cut_answer_is_incomplete(gateway_url, funded_key):
    _, key = funded_key
    client = client_for(gateway_url, key)
    response = client.responses.create(model=MODEL, input="Say something long", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "This is a" and response.usage.output_tokens == 3

    events = list(
        client.responses.create(model=MODEL, input="Say something long", max_output_tokens=3, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_the_sandboxs_output_items_sent_back_are_accepted(gateway_url, funded_key):
    _, key = funded_key
    client = client_for(gateway_url, key)
    conversation: list = [{"role": "user", "content": "Hi"}]
    first = client.responses.create(model=MODEL, input=conversation, reasoning={"effort": "low"})
    assert [item.type for item in first.output] == ["reasoning", "message"]
    conversation += [*first.output, {"role": "user", "content": "Again"}]
    second = client.responses.create(model=MODEL, input=conversation)
    assert second.status == "completed" and second.output_text.endswith("You said: Again")


# --- Errors in the OpenAI envelope --------------------------------------------------------
def test_errors_come_in_the_openai_envelope_with_the_taxonomy_code(gateway_url, funded_key):
    _, key = funded_key
    with pytest.raises(openai.AuthenticationError) as bad_key:
        client_for(gateway_url, "hi-wrong").responses.create(model=MODEL, input="x")
    assert bad_key.value.status_code == 401 and bad_key.value.body["code"] == "invalid_api_key"

    client = client_for(gateway_url, key)
    with pytest.raises(openai.BadRequestError) as bad_role:
        client.responses.create(model=MODEL, input=[{"role": "robot", "content": "x"}])
    assert (
        bad_role.value.body["code"] == "invalid_request" and bad_role.value.body["param"] == "input[0].role"
    )

    with pytest.raises(openai.BadRequestError) as stateful:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_earlier")
    assert stateful.value.body["code"] == "invalid_request"
    assert (
        stateful.value.body["param"] == "previous_response_id"
        and "stateless" in stateful.value.body["message"]
    )

    with pytest.raises(openai.BadRequestError) as server_tool:
        client.responses.create(
            model=MODEL, input="x", tools=[{"type": "web_search"}, {"type": "web_search"}]
        )
    assert server_tool.value.body["param"] == "tools[1].type"

    raw = httpx.post(
        f"{gateway_url}/api/v1/responses", json={"model": MODEL}, headers={"Authorization": f"Bearer {key}"}
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert raw.json()["error"]["request_id"] == raw.headers["x-request-id"]


def test_the_sdks_stored_response_calls_get_a_clear_404(gateway_url, funded_key):
    client = client_for(gateway_url, funded_key[1])
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.retrieve("resp_abc")
    assert raised.value.body["code"] == "invalid_request" and "stateless" in raised.value.body["message"]
    assert raised.value.body["request_id"] == raised.value.response.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError):
        client.responses.delete("resp_abc")
    assert httpx.post(f"{gateway_url}/api/v1/responses/resp_abc/cancel").status_code == 404

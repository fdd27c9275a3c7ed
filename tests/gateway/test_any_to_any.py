"""The any-to-any matrix: every ingress format, every upstream dialect, and for each pair {text, tool round
trip, reasoning, streamed reasoning, streamed tool call}, through the whole gateway against real-HTTP fakes.
Each cell asserts what the upstream received (the translated request) and what the format's official SDK got
back (the rendered response). A streamed cell also proves that every event the SDK yields is one of the SDK's
own event classes, valid against it, with no field the SDK does not declare (bar the gateway's extensions).
The two sides are in any_to_any_clients.py and any_to_any_upstreams.py, and what every cell says in
any_to_any_conversation.py."""

import pytest

from tests.gateway.any_to_any_clients import CLIENTS, assert_sdk_typed
from tests.gateway.any_to_any_conversation import (
    ANSWER,
    CALL_ARGUMENTS,
    CALL_ID,
    QUESTION,
    THOUGHT,
    TOOL_RESULT,
    WEATHER_PARAMETERS,
    Answer,
    ToolCall,
)
from tests.gateway.any_to_any_upstreams import UPSTREAMS, expected_reasoning_control, upstream
from tests.gateway.conftest import settled_generation


# --- The matrix -----------------------------------------------------------------------------------------
def cells(case: str):
    return [pytest.param(f, kind, id=f"{f}-{kind}-{case}") for f in CLIENTS for kind in UPSTREAMS]


@pytest.mark.parametrize(("client_format", "kind"), cells("text"))
def test_text(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(text=ANSWER)
        answer = client.ask()
        sent = up.received()
    assert sent["stream"] is False  # a non-streamed request asks the upstream for the whole answer (ADR 0019)
    assert up.last_user_text(sent) == QUESTION
    assert answer.text == ANSWER and answer.tool_calls is None
    generation = settled_generation(answer.request_id)
    assert generation.ingress_format == client.format and generation.status == "completed"


@pytest.mark.parametrize(("client_format", "kind"), cells("tools"))
def test_tool_round_trip(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(tool_call=True)
        first = client.ask_with_tool()
        first_sent = up.received()
        up.answer_with(text=ANSWER)
        second = client.send_tool_result(first.tool_calls[0])
        second_sent = up.received()
    assert up.tool_names(first_sent) == ["get_weather"]
    assert up.tool_parameters(first_sent) == WEATHER_PARAMETERS
    assert first.tool_calls == [ToolCall(CALL_ID, "get_weather", CALL_ARGUMENTS)]
    assert up.call_and_result(second_sent) == (CALL_ID, "get_weather", CALL_ARGUMENTS, CALL_ID, TOOL_RESULT)
    assert second.text == ANSWER


@pytest.mark.parametrize(("client_format", "kind"), cells("reasoning"))
def test_reasoning(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(text=ANSWER, reasoning=THOUGHT)
        answer = client.ask_reasoning()
        sent = up.received()
    assert up.reasoning_control(sent) == expected_reasoning_control(kind, client_format)
    assert answer.reasoning == THOUGHT and answer.text == ANSWER


@pytest.mark.parametrize(("client_format", "kind"), cells("stream"))
def test_streamed_reasoning(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(text=ANSWER, reasoning=THOUGHT)
        streamed = client.stream_reasoning()
        sent = up.received()
    assert sent["stream"] is True and up.last_user_text(sent) == QUESTION
    assert up.reasoning_control(sent) == expected_reasoning_control(kind, client_format)
    assert streamed.deltas == Answer(ANSWER, THOUGHT)
    assert streamed.final == Answer(ANSWER, THOUGHT)
    assert streamed.stop == client.stops["text"] and streamed.output_tokens > 0
    assert_sdk_typed(streamed.events, client)


@pytest.mark.parametrize(("client_format", "kind"), cells("stream-tool"))
def test_streamed_tool_call(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(tool_call=True)
        streamed = client.stream_with_tool()
        sent = up.received()
    assert sent["stream"] is True and up.tool_names(sent) == ["get_weather"]
    call = [ToolCall(CALL_ID, "get_weather", CALL_ARGUMENTS)]
    assert streamed.deltas == Answer("", tool_calls=call)
    assert streamed.final == Answer("", tool_calls=call)
    assert streamed.stop == client.stops["tool"] and streamed.output_tokens > 0
    assert_sdk_typed(streamed.events, client)

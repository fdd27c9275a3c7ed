"""The any-to-any matrix: every ingress format, every upstream dialect, and for each pair {text, tool round
trip, reasoning, streaming}, through the whole gateway against real-HTTP fakes. Each cell asserts what the
upstream received (the translated request) and what the format's official SDK got back (the rendered
response)."""

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import FakeToolCall, Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

KEY = "test-key"
MODEL = "matrix/model"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris today."
THOUGHT = "The user wants the weather; I should answer briefly."
TOOL_RESULT = "sunny, 24 C"
WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALL_ID = "call_weather_1"
CALL_ARGUMENTS = {"city": "Paris"}


# --- What a client sees, whatever its format --------------------------------------------------------
@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Answer:
    text: str
    reasoning: str = ""
    tool_calls: list[ToolCall] | None = None
    request_id: str = ""


# --- The upstream side: one fake per dialect, and how to read what it received -----------------------
OPENAI_DIALECTS = {
    "openai_compatible": "cerebras",  # a plain OpenAI-compatible server: the fake's wire format is the same
    "cerebras": "cerebras",
    "fireworks": "fireworks",
    "baseten": "baseten",
    "llamacpp": "llamacpp",
}
UPSTREAMS = [*OPENAI_DIALECTS, "anthropic"]


class OpenAIUpstream:
    def __init__(self, kind: str, fake) -> None:
        self.kind, self.fake = kind, fake

    def answer_with(self, *, text: str = "", reasoning: str = "", tool_call: bool = False) -> None:
        calls = [FakeToolCall("get_weather", json.dumps(CALL_ARGUMENTS), id=CALL_ID)] if tool_call else []
        self.fake.scenario = Scenario(text=text, reasoning=reasoning, tool_calls=calls)

    def received(self) -> dict:
        """The last chat request, not counting llama.cpp's one-token usage probe that follows it."""
        return [r.body for r in self.fake.chat_requests if r.body.get("stream") is not False][-1]

    def last_user_text(self, body: dict) -> str:
        return _text_of(next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"])

    def tool_names(self, body: dict) -> list[str]:
        return [tool["function"]["name"] for tool in body.get("tools", [])]

    def tool_parameters(self, body: dict) -> dict:
        return body["tools"][0]["function"]["parameters"]

    def call_and_result(self, body: dict) -> tuple[str, str, dict, str, str]:
        """(assistant call id, name, arguments, tool result's call id, its text) in the second turn."""
        call = next(m for m in body["messages"] if m["role"] == "assistant")["tool_calls"][0]
        result = next(m for m in body["messages"] if m["role"] == "tool")
        arguments = json.loads(call["function"]["arguments"])
        return (
            call["id"],
            call["function"]["name"],
            arguments,
            result["tool_call_id"],
            _text_of(result["content"]),
        )

    def reasoning_control(self, body: dict) -> Any:
        return {k: body[k] for k in ("reasoning_effort", "thinking", "reasoning_format") if k in body}


class AnthropicUpstream:
    kind = "anthropic"

    def __init__(self, fake) -> None:
        self.fake = fake

    def answer_with(self, *, text: str = "", reasoning: str = "", tool_call: bool = False) -> None:
        tool = ToolUse("get_weather", CALL_ARGUMENTS, id=CALL_ID) if tool_call else None
        self.fake.scenarios = [AnthropicScenario(text=text, thinking=reasoning or None, tool_use=tool)]

    def received(self) -> dict:
        return self.fake.requests[-1].body

    def last_user_text(self, body: dict) -> str:
        return _text_of(body["messages"][-1]["content"])

    def tool_names(self, body: dict) -> list[str]:
        return [tool["name"] for tool in body.get("tools", [])]

    def tool_parameters(self, body: dict) -> dict:
        return body["tools"][0]["input_schema"]

    def call_and_result(self, body: dict) -> tuple[str, str, dict, str, str]:
        blocks = [
            block for message in body["messages"] for block in message["content"] if isinstance(block, dict)
        ]
        call = next(b for b in blocks if b["type"] == "tool_use")
        result = next(b for b in blocks if b["type"] == "tool_result")
        return call["id"], call["name"], call["input"], result["tool_use_id"], _text_of(result["content"])

    def reasoning_control(self, body: dict) -> Any:
        return {"thinking": body["thinking"]} if "thinking" in body else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


@contextmanager
def upstream(kind: str, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    if kind == "anthropic":
        with anthropic_fake(AnthropicScenario(api_key=KEY)) as fake:
            serve_model_from(MODEL, [("anthropic", fake.url + "/v1")])
            yield AnthropicUpstream(fake)
        return
    with openai_fake(OPENAI_DIALECTS[kind], api_key=KEY) as fake:
        serve_model_from(MODEL, [(kind, fake.base_url)])
        yield OpenAIUpstream(kind, fake)


# What each dialect receives when the client asks for a little reasoning (chat/responses: effort "low";
# messages: a 1024-token budget). Baseten's and llama.cpp's APIs have no reasoning control: nothing is sent
# (documented in docs/translation.md); their models reason or not on their own.
def expected_reasoning_control(kind: str, client_format: str) -> dict:
    if kind == "anthropic":
        return {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    if kind in ("baseten", "llamacpp"):
        return {}
    if kind == "fireworks" and client_format == "messages":
        return {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    control = {"reasoning_effort": "low"}
    return {**control, "reasoning_format": "parsed"} if kind == "cerebras" else control


# --- The client side: one official SDK per format ----------------------------------------------------
class ChatClient:
    format = "chat_completions"

    def __init__(self, url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)

    def _answer(self, raw) -> Answer:
        message = raw.parse().choices[0].message
        calls = [
            ToolCall(c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or []
        ]
        reasoning = (message.model_extra or {}).get("reasoning") or ""
        return Answer(message.content or "", reasoning, calls or None, raw.headers["x-request-id"])

    def ask(self, **options) -> Answer:
        raw = self.sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], **options
        )
        return self._answer(raw)

    def ask_with_tool(self) -> Answer:
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS}}
        raw = self.sdk.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": QUESTION}],
            tools=[tool],
            tool_choice="required",
        )
        return self._answer(raw)

    def send_tool_result(self, call: ToolCall) -> Answer:
        messages = [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
        ]
        return self._answer(
            self.sdk.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        )

    def ask_reasoning(self) -> Answer:
        return self.ask(reasoning_effort="low")

    def stream(self) -> tuple[str, int]:
        """(the streamed text joined, the completion tokens of the final usage)."""
        chunks = list(
            self.sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[-1].usage.completion_tokens


class MessagesClient:
    format = "anthropic_messages"

    def __init__(self, url: str, key: str) -> None:
        self.sdk = anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)

    def _answer(self, raw) -> Answer:
        message = raw.parse()
        text = "".join(block.text for block in message.content if block.type == "text")
        reasoning = "".join(block.thinking for block in message.content if block.type == "thinking")
        calls = [ToolCall(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
        return Answer(text, reasoning, calls or None, raw.headers["x-request-id"])

    def _create(self, messages: list[dict], **options) -> Answer:
        raw = self.sdk.messages.with_raw_response.create(
            model=MODEL, max_tokens=2000, messages=messages, **options
        )
        return self._answer(raw)

    def ask(self, **options) -> Answer:
        return self._create([{"role": "user", "content": QUESTION}], **options)

    def _tool(self) -> dict:
        return {"name": "get_weather", "input_schema": WEATHER_PARAMETERS}

    def ask_with_tool(self) -> Answer:
        return self.ask(tools=[self._tool()], tool_choice={"type": "any"})

    def send_tool_result(self, call: ToolCall) -> Answer:
        messages = [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}],
            },
        ]
        return self._create(messages, tools=[self._tool()])

    def ask_reasoning(self) -> Answer:
        return self.ask(thinking={"type": "enabled", "budget_tokens": 1024})

    def stream(self) -> tuple[str, int]:
        with self.sdk.messages.stream(
            model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": QUESTION}]
        ) as events:
            text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
            final = events.get_final_message()
        assert final.content[0].text == text
        return text, final.usage.output_tokens


class ResponsesClient:
    format = "responses"

    def __init__(self, url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)

    def _answer(self, raw) -> Answer:
        response = raw.parse()
        reasoning = "".join(
            part.text for item in response.output if item.type == "reasoning" for part in item.summary
        )
        calls = [
            ToolCall(item.call_id, item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        return Answer(response.output_text, reasoning, calls or None, raw.headers["x-request-id"])

    def _create(self, input_: Any, **options) -> Answer:
        return self._answer(self.sdk.responses.with_raw_response.create(model=MODEL, input=input_, **options))

    def ask(self, **options) -> Answer:
        return self._create(QUESTION, **options)

    def _tool(self) -> dict:
        return {"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMETERS}

    def ask_with_tool(self) -> Answer:
        return self.ask(tools=[self._tool()], tool_choice="required")

    def send_tool_result(self, call: ToolCall) -> Answer:
        items = [
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
            },
            {"type": "function_call_output", "call_id": call.id, "output": TOOL_RESULT},
        ]
        return self._create(items, tools=[self._tool()])

    def ask_reasoning(self) -> Answer:
        return self.ask(reasoning={"effort": "low"})

    def stream(self) -> tuple[str, int]:
        with self.sdk.responses.stream(model=MODEL, input=QUESTION) as events:
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            final = events.get_final_response()
        assert final.output_text == text
        return text, final.usage.output_tokens


CLIENTS: dict[str, Callable[[str, str], Any]] = {
    "chat": ChatClient,
    "messages": MessagesClient,
    "responses": ResponsesClient,
}


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
def test_streaming(gateway_url, funded_key, monkeypatch, client_format, kind):
    client = CLIENTS[client_format](gateway_url, funded_key[1])
    with upstream(kind, monkeypatch) as up:
        up.answer_with(text=ANSWER)
        text, completion_tokens = client.stream()
        sent = up.received()
    assert sent["stream"] is True and up.last_user_text(sent) == QUESTION
    assert text == ANSWER and completion_tokens > 0

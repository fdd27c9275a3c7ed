"""The any-to-any matrix: every ingress format, every upstream dialect, and for each pair {text, tool round
trip, reasoning, streamed reasoning, streamed tool call}, through the whole gateway against real-HTTP fakes.
Each cell asserts what the upstream received (the translated request) and what the format's official SDK got
back (the rendered response). A streamed cell also proves that every event the SDK yields is one of the SDK's
own event classes, valid against it, with no field the SDK does not declare (bar the gateway's extensions)."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

import anthropic
import anthropic.lib.streaming
import openai
import openai.lib.streaming.responses
import pydantic
import pytest
from anthropic.types import MessageDeltaUsage, Usage
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.responses import Response, ResponseFunctionCallArgumentsDoneEvent, ResponseUsage

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
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


@dataclass
class Streamed:
    events: list[Any]  # every event the SDK yielded, in order
    deltas: Answer  # what the streamed deltas join to
    final: Answer  # the SDK's accumulated result (chat: the chunks folded by hand, as the SDK has no fold)
    output_tokens: int
    stop: str  # chat: finish_reason; responses: the final status; messages: stop_reason


# --- Is every streamed event one the SDK itself knows? ------------------------------------------------
def _origin(cls: type) -> type:
    """A generic pydantic model's parametrisation (ParsedMessageStopEvent[T]) reduced to its class."""
    return getattr(cls, "__pydantic_generic_metadata__", {}).get("origin") or cls


def event_classes(union: Any) -> tuple[type, ...]:
    if get_origin(union) is Annotated:
        union = get_args(union)[0]
    return tuple(_origin(member) for member in get_args(union))


def _undeclared(model: pydantic.BaseModel, path: str = "") -> Iterator[tuple[type, str, str]]:
    """(declaring class, key, path) of every key a model, or a model inside it, holds without declaring it."""
    for key in model.model_extra or {}:
        yield type(model), key, path + key
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, pydantic.BaseModel):
                yield from _undeclared(item, f"{path}{name}.")


def sdk_problems(events: list[Any], classes: tuple[type, ...], extensions: set[tuple[type, str]]) -> list:
    """What is wrong with each event: not exactly one of `classes` (for data they cannot parse the SDKs build
    an unvalidated look-alike), invalid against its class, or holding a key its class does not declare,
    other than the (class, key) pairs in `extensions`."""
    problems = []
    for number, event in enumerate(events):
        label = f"event {number} {type(event).__name__} {getattr(event, 'type', None) or event.object!r}"
        if _origin(type(event)) not in classes:
            problems.append(f"{label}: not one of the SDK's event classes")
            continue
        try:
            type(event).model_validate(event.model_dump(by_alias=True, exclude_unset=True, warnings=False))
        except pydantic.ValidationError as error:
            problems.append(f"{label}: {error}")
        problems += [
            f"{label}: undeclared {path} (on {owner.__name__})"
            for owner, key, path in _undeclared(event)
            if not any(issubclass(owner, cls) and key == allowed for cls, allowed in extensions)
        ]
    return problems


def assert_sdk_typed(events: list[Any], client) -> None:
    problems = sdk_problems(events, client.events, client.extensions)
    assert not problems, "\n".join(problems)


# --- The upstream side: one fake per dialect, and how to read what it received -----------------------
OPENAI_DIALECTS = {
    "openai_compatible": "cerebras",  # a plain OpenAI-compatible server: the fake's wire format is the same
    "cerebras": "cerebras",
    "fireworks": "fireworks",
    "baseten": "baseten",
    "llamacpp": "llamacpp",
}
UPSTREAMS = [*OPENAI_DIALECTS, "anthropic"]


def _usage_probe(body: dict) -> bool:
    return body.get("stream") is False and body.get("max_tokens") == 1


class OpenAIUpstream:
    def __init__(self, kind: str, fake) -> None:
        self.kind, self.fake = kind, fake

    def answer_with(self, *, text: str = "", reasoning: str = "", tool_call: bool = False) -> None:
        calls = [FakeToolCall("get_weather", json.dumps(CALL_ARGUMENTS), id=CALL_ID)] if tool_call else []
        self.fake.scenario = Scenario(text=text, reasoning=reasoning, tool_calls=calls)

    def received(self) -> dict:
        """The last chat request, not counting llama.cpp's one-token usage probe that follows it."""
        return [r.body for r in self.fake.chat_requests if not _usage_probe(r.body)][-1]

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
    events = (ChatCompletionChunk,)
    # documented HyperInfer fields: the cost, the reasoning text and signed reasoning (docs/translation.md)
    extensions = {
        (CompletionUsage, "cost"),
        (CompletionUsage, "provider_metadata"),
        (ChoiceDelta, "reasoning"),
        (ChoiceDelta, "reasoning_details"),
    }
    stops = {"text": "stop", "tool": "tool_calls"}
    reasoning = {"reasoning_effort": "low"}

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

    def _tool(self) -> dict:
        return {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS}}

    def ask_with_tool(self) -> Answer:
        return self.ask(tools=[self._tool()], tool_choice="required")

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
        return self.ask(**self.reasoning)

    def _stream(self, **options) -> Streamed:
        chunks = list(
            self.sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True, **options
            )
        )
        text, reasoning, calls, finish = "", "", {}, ""
        for choice in (choice for chunk in chunks for choice in chunk.choices):
            text += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning") or ""
            for call in choice.delta.tool_calls or []:  # the SDK's own fold joins every string piece
                slot = calls.setdefault(call.index, ["", "", ""])
                function = call.function
                slot[0] += call.id or ""
                slot[1] += (function and function.name) or ""
                slot[2] += (function and function.arguments) or ""
            finish = choice.finish_reason or finish
        tool_calls = [ToolCall(id_, name, json.loads(arguments)) for id_, name, arguments in calls.values()]
        folded = Answer(text, reasoning, tool_calls or None)
        return Streamed(chunks, folded, folded, chunks[-1].usage.completion_tokens, finish)

    def stream_reasoning(self) -> Streamed:
        return self._stream(**self.reasoning)

    def stream_with_tool(self) -> Streamed:
        return self._stream(tools=[self._tool()], tool_choice="required")


class MessagesClient:
    format = "anthropic_messages"
    events = event_classes(anthropic.lib.streaming.ParsedMessageStreamEvent)  # what messages.stream() yields
    extensions = {
        (Usage, "cost"),
        (MessageDeltaUsage, "cost"),
        (Usage, "provider_metadata"),
        (MessageDeltaUsage, "provider_metadata"),
    }
    stops = {"text": "end_turn", "tool": "tool_use"}
    reasoning = {"thinking": {"type": "enabled", "budget_tokens": 1024}}

    def __init__(self, url: str, key: str) -> None:
        self.sdk = anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)

    def _answer(self, raw) -> Answer:
        return self._read(raw.parse(), raw.headers["x-request-id"])

    def _read(self, message, request_id: str = "") -> Answer:
        text = "".join(block.text for block in message.content if block.type == "text")
        reasoning = "".join(block.thinking for block in message.content if block.type == "thinking")
        calls = [ToolCall(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
        return Answer(text, reasoning, calls or None, request_id)

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
        return self.ask(**self.reasoning)

    def _stream(self, **options) -> Streamed:
        messages = [{"role": "user", "content": QUESTION}]
        with self.sdk.messages.stream(model=MODEL, max_tokens=2000, messages=messages, **options) as stream:
            events = list(stream)
            final = stream.get_final_message()
        deltas = [e.delta for e in events if e.type == "content_block_delta"]
        starts = [e.content_block for e in events if e.type == "content_block_start"]
        arguments = "".join(d.partial_json for d in deltas if d.type == "input_json_delta")
        streamed = Answer(
            "".join(d.text for d in deltas if d.type == "text_delta"),
            "".join(d.thinking for d in deltas if d.type == "thinking_delta"),
            [ToolCall(b.id, b.name, json.loads(arguments)) for b in starts if b.type == "tool_use"] or None,
        )
        return Streamed(events, streamed, self._read(final), final.usage.output_tokens, final.stop_reason)

    def stream_reasoning(self) -> Streamed:
        return self._stream(**self.reasoning)

    def stream_with_tool(self) -> Streamed:
        return self._stream(tools=[self._tool()], tool_choice={"type": "any"})


class ResponsesClient:
    format = "responses"
    # What responses.stream() yields: ResponseStreamEvent with its own snapshot-carrying wrappers for some.
    events = event_classes(openai.lib.streaming.responses.ResponseStreamEvent)
    # `store` (on every response) and `name` (on function_call_arguments.done) are fields of OpenAI's own API
    # that this SDK version does not model: not misnamed, so accepted; anything else undeclared is not.
    extensions = {
        (ResponseUsage, "cost"),
        (ResponseUsage, "provider_metadata"),
        (Response, "store"),
        (ResponseFunctionCallArgumentsDoneEvent, "name"),
    }
    stops = {"text": "completed", "tool": "completed"}
    reasoning = {"reasoning": {"effort": "low"}}

    def __init__(self, url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)

    def _answer(self, raw) -> Answer:
        return self._read(raw.parse(), raw.headers["x-request-id"])

    def _read(self, response, request_id: str = "") -> Answer:
        reasoning = "".join(
            part.text for item in response.output if item.type == "reasoning" for part in item.summary
        )
        calls = [
            ToolCall(item.call_id, item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        return Answer(response.output_text, reasoning, calls or None, request_id)

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
        return self.ask(**self.reasoning)

    def _stream(self, **options) -> Streamed:
        with self.sdk.responses.stream(model=MODEL, input=QUESTION, **options) as stream:
            events = list(stream)
            final = stream.get_final_response()

        def joined(kind: str) -> str:
            return "".join(e.delta for e in events if e.type == kind)

        arguments = joined("response.function_call_arguments.delta")
        added = [e.item for e in events if e.type == "response.output_item.added"]
        streamed = Answer(
            joined("response.output_text.delta"),
            joined("response.reasoning_summary_text.delta"),
            [ToolCall(i.call_id, i.name, json.loads(arguments)) for i in added if i.type == "function_call"]
            or None,
        )
        return Streamed(events, streamed, self._read(final), final.usage.output_tokens, final.status)

    def stream_reasoning(self) -> Streamed:
        return self._stream(**self.reasoning)

    def stream_with_tool(self) -> Streamed:
        return self._stream(tools=[self._tool()], tool_choice="required")


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

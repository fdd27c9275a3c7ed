"""The client side of the any-to-any matrix (tests/gateway/test_any_to_any.py): one official SDK per format,
and whether every event a streamed answer yields is one of that SDK's own event classes."""

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, get_args, get_origin

import anthropic
import anthropic.lib.streaming
import openai
import openai.lib.streaming.responses
import pydantic
from anthropic.types import MessageDeltaUsage, Usage
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.responses import Response, ResponseFunctionCallArgumentsDoneEvent, ResponseUsage

from tests.gateway.any_to_any_conversation import (
    MODEL,
    QUESTION,
    TOOL_RESULT,
    WEATHER_PARAMETERS,
    Answer,
    Streamed,
    ToolCall,
)


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

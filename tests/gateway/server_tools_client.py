"""A client of the gateway's server tools in each format, streamed and not: what an answer showed, read with
the official SDKs' own types (openai, anthropic) wherever they have one, and the raw stream's tool events."""

import json
from dataclasses import dataclass, field

import anthropic
import httpx
import openai
from anthropic.types import Message as AnthropicMessage
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response

PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}
TOOL_EVENT_MARKS = ("hi_tool", "web_search_call.", "image_generation_call.")


@dataclass
class Answer:
    request_id: str
    text: str = ""
    citations: list[str] = field(default_factory=list)  # cited URLs, in order
    images: int = 0  # generated images shown
    shapes: list[str] = field(default_factory=list)  # the native tool items/blocks, by type, in order
    tool_events: list[str] = field(default_factory=list)  # the stream's tool event names, in order


def body_for(fmt: str, model: str, prompt: str, tools: list[str], *, stream: bool, events: bool) -> dict:
    body: dict = {"model": model, "stream": stream}
    if events:
        body["hi_tool_events"] = True
    if fmt == "responses":
        return {**body, "input": prompt, "tools": [{"type": name} for name in tools]}
    body |= {"messages": [{"role": "user", "content": prompt}], "plugins": [{"id": name} for name in tools]}
    return {**body, "max_tokens": 300} if fmt == "messages" else body


def ask(fmt: str, url: str, key: str, body: dict) -> Answer:
    if body.get("stream"):
        return _streamed(fmt, url, key, body)
    return _whole(fmt, url, key, body)


# --- Not streamed: the SDK's objects -------------------------------------------------------------
def _whole(fmt: str, url: str, key: str, body: dict) -> Answer:
    body = dict(body)  # the SDKs take the HyperInfer fields as extra_body
    extra = {name: body.pop(name) for name in ("plugins", "hi_tool_events") if name in body}
    if fmt == "messages":
        client = anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)
        raw = client.messages.with_raw_response.create(**body, extra_body=extra)
        return _from_message(raw.headers["x-request-id"], raw.parse())
    client_ = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)
    if fmt == "responses":
        raw_response = client_.responses.with_raw_response.create(**body, extra_body=extra)
        return _from_response(raw_response.headers["x-request-id"], raw_response.parse())
    raw_chat = client_.chat.completions.with_raw_response.create(**body, extra_body=extra)
    message = raw_chat.parse().choices[0].message
    answer = Answer(raw_chat.headers["x-request-id"], text=message.content or "")
    answer.citations = [a.url_citation.url for a in message.annotations or [] if a.type == "url_citation"]
    answer.images = len((message.model_extra or {}).get("images") or [])
    return answer


def _from_response(request_id: str, response: Response) -> Answer:
    answer = Answer(request_id, text=response.output_text)
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                annotations = getattr(part, "annotations", [])
                answer.citations += [a.url for a in annotations if a.type == "url_citation"]
        elif item.type in ("web_search_call", "image_generation_call"):
            answer.shapes.append(item.type)
            answer.images += bool(item.type == "image_generation_call" and item.result)
    return answer


def _from_message(request_id: str, message: AnthropicMessage) -> Answer:
    answer = Answer(request_id)
    for block in message.content:
        kind = block.type
        if kind == "text":
            answer.text += block.text
            cited = block.citations or []
            answer.citations += [c.url for c in cited if c.type == "web_search_result_location"]
        elif kind != "thinking":
            answer.shapes.append(kind)
            extra = block.model_extra or {}
            answer.images += sum(1 for part in extra.get("content") or [] if part.get("type") == "image")
    return answer


# --- Streamed: the raw events, then the SDK's types ----------------------------------------------
def raw_events(fmt: str, url: str, key: str, body: dict) -> tuple[str, list[tuple[str | None, dict]]]:
    headers = {"x-api-key": key} if fmt == "messages" else {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", url + PATHS[fmt], headers=headers, json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        text = response.read().decode()
    events = []
    for frame in text.split("\n\n"):
        lines = [line for line in frame.splitlines() if line and not line.startswith(":")]
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        if data and data != "[DONE]":
            name = next((line[7:] for line in lines if line.startswith("event: ")), None)
            events.append((name, json.loads(data)))
    return response.headers["x-request-id"], events


def _streamed(fmt: str, url: str, key: str, body: dict) -> Answer:
    request_id, events = raw_events(fmt, url, key, body)
    if fmt == "chat":
        answer = Answer(request_id)
        for _, data in events:
            if "hi_tool_event" in data:
                answer.tool_events.append(data["hi_tool_event"]["type"])
                continue
            chunk = ChatCompletionChunk.model_validate(data)  # the SDK's own type
            for choice in chunk.choices:
                extra = choice.delta.model_extra or {}
                answer.text += choice.delta.content or ""
                answer.citations += [a["url_citation"]["url"] for a in extra.get("annotations") or []]
                answer.images += len(extra.get("images") or [])
        return answer
    names = [name or data.get("type", "") for name, data in events]
    if fmt == "responses":
        completed = next(data for name, data in events if name == "response.completed")
        answer = _from_response(request_id, Response.model_validate(completed["response"]))
    else:
        answer = _from_message(request_id, _accumulated(events))
    answer.tool_events = [name for name in names if any(mark in name for mark in TOOL_EVENT_MARKS)]
    return answer


def _accumulated(events: list[tuple[str | None, dict]]) -> AnthropicMessage:
    """The message an Anthropic stream adds up to, by the SDK's own accumulator."""
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent

    message = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        if name in ("hi_tool_started", "hi_tool_completed", "ping"):
            continue  # the SDK skips events it does not know
        event = anthropic._models.construct_type(type_=RawMessageStreamEvent, value=data)
        message = accumulate_event(event=event, current_snapshot=message, json_bufs=buffers)
    assert message is not None
    return message

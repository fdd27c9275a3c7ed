"""A fake Anthropic Messages API (POST /v1/messages, streamed) on real TCP, configurable per test.

    with anthropic_fake(Scenario(text="Hi")) as fake:
        route = anthropic_route(fake.url)           # base_url = fake.url + "/v1"
        ...
        fake.requests[0].body["messages"], fake.requests[0].headers["x-api-key"]

Each request takes the next scenario given; the last one repeats for every later request.
Like the real API, it answers 400 invalid_request_error when `max_tokens` is missing, the roles do not
alternate or a content list is empty, and when the `anthropic-version` header is missing; it answers 401
when `Scenario.api_key` is set and `x-api-key` differs. It only speaks the streamed protocol.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

from aiohttp import web

from gateway.upstreams.base import ProviderInfo, RouteInfo
from tests.fakes.server import CUT_AFTER_S, FakeServer

Failure = Literal[
    "overloaded",  # HTTP 529 overloaded_error
    "rate_limit",  # HTTP 429 rate_limit_error
    "auth",  # HTTP 401 authentication_error
    "server_error",  # HTTP 500 api_error
    "prompt_too_long",  # HTTP 400 invalid_request_error "prompt is too long: …"
    "cut",  # the connection drops after the first text delta
    "truncated",  # the stream ends cleanly after the first text delta, without message_stop
    "error_event",  # an `error` event (overloaded_error) after the first text delta
    "malformed",  # a data line that is not JSON after message_start
    "http_error",  # HTTP `error_status` with an error of `error_type` saying `error_message`
]

HTTP_FAILURES: dict[str, tuple[int, str, str]] = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    ),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "server_error": (500, "api_error", "Internal server error"),
    "prompt_too_long": (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
}


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = "toolu_01A"
    parts: int = 3  # the input JSON is sent in this many input_json_delta pieces


@dataclass
class Scenario:
    text: str = "Hello there!"
    chunks: int = 3  # the text is sent in this many text_delta pieces, a ping between each
    thinking: str | None = None
    signature: str = "EqQBCkYIARgCIkD-signature"
    redacted_thinking: str | None = None  # the opaque data of a redacted_thinking block, sent first
    tool_use: ToolUse | None = None
    text_after_tool_use: str = ""  # a text block after the tool_use block ([text, tool_use, text])
    stop_reason: str | None = None  # default: tool_use with a tool call, else end_turn
    stop_sequence: str | None = None  # with stop_reason "stop_sequence": the one that matched
    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    failure: Failure | None = None
    first_byte_delay: float = 0.0  # seconds before the response headers are sent
    api_key: str | None = None  # when set, any other x-api-key gets a 401
    model: str = "claude-test-1"
    error_status: int = 400  # for http_error
    error_type: str = "invalid_request_error"
    error_message: str = "fake http_error"
    # A model that calls a tool the request offers, (name, arguments JSON), while the conversation has no
    # tool_result yet, and then answers "From the tool: " and the start of the last result (it read it).
    tool_call: tuple[str, str] | None = None


def _step(s: Scenario, body: dict[str, Any]) -> Scenario:
    """The scenario for this request of a tool-calling conversation: the call, or the answer from it."""
    if s.tool_call is None:
        return s
    name, arguments = s.tool_call
    results = [
        block
        for message in body.get("messages") or []
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    if not results:
        if name in {tool.get("name") for tool in body.get("tools") or []}:
            return replace(s, text="", tool_use=ToolUse(name, json.loads(arguments), id=f"toolu_{name}"))
        return s
    content = results[-1].get("content") or ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return replace(s, text="From the tool: " + content[:80], tool_use=None)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


@dataclass
class AnthropicFake:
    scenarios: list[Scenario]
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""

    def next_scenario(self) -> Scenario:
        return self.scenarios[min(len(self.requests) - 1, len(self.scenarios) - 1)]


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _invalid_body(body: dict[str, Any]) -> str | None:
    """What the real API would reject in a body (a small, honest subset)."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    roles = [message.get("role") for message in body.get("messages", [])]
    if not roles or roles[0] != "user":
        return "messages: first message must use the user role"
    if any(a == b for a, b in pairwise(roles)):
        return "messages: roles must alternate between user and assistant"
    if any(not message.get("content") for message in body["messages"]):
        return "messages: all messages must have non-empty content"
    return None


def _chunks(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // max(count, 1)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _block_events(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    events = [_sse("content_block_start", {"index": index, "content_block": start})]
    events += [_sse("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
    return [*events, _sse("content_block_stop", {"index": index})]


def _message_start(s: Scenario) -> bytes:
    usage = {
        "input_tokens": s.input_tokens,
        "cache_creation_input_tokens": s.cache_creation_input_tokens,
        "cache_read_input_tokens": s.cache_read_input_tokens,
        "output_tokens": 1,
    }
    message = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": s.model, "content": []}
    return _sse(
        "message_start", {"message": {**message, "stop_reason": None, "stop_sequence": None, "usage": usage}}
    )


def stream_events(s: Scenario) -> list[bytes]:
    """The whole SSE stream of a successful scenario, event by event."""
    events, index = [_message_start(s), _sse("ping", {})], 0
    if s.redacted_thinking is not None:
        events += _block_events(index, {"type": "redacted_thinking", "data": s.redacted_thinking}, [])
        index += 1
    if s.thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": part} for part in _chunks(s.thinking, 2)]
        deltas.append({"type": "signature_delta", "signature": s.signature})
        events += _block_events(index, {"type": "thinking", "thinking": ""}, deltas)
        index += 1
    if s.text:
        start = _sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        events.append(start)
        for part in _chunks(s.text, s.chunks):
            events.append(
                _sse("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": part}})
            )
            events.append(_sse("ping", {}))
        events.append(_sse("content_block_stop", {"index": index}))
        index += 1
    if s.tool_use is not None:
        tool = s.tool_use
        parts = ["", *_chunks(json.dumps(tool.input), tool.parts)]
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in parts]
        start = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        events += _block_events(index, start, deltas)
        index += 1
    if s.text_after_tool_use:
        deltas = [{"type": "text_delta", "text": part} for part in _chunks(s.text_after_tool_use, 2)]
        events += _block_events(index, {"type": "text", "text": ""}, deltas)
    stop_reason = s.stop_reason or ("tool_use" if s.tool_use else "end_turn")
    delta = {
        "delta": {"stop_reason": stop_reason, "stop_sequence": s.stop_sequence},
        "usage": {"output_tokens": s.output_tokens},
    }
    return [*events, _sse("message_delta", delta), _sse("message_stop", {})]


def _failing_stream(s: Scenario) -> list[bytes]:
    """The part of the stream sent before a mid-stream failure, then its ending."""
    head = stream_events(Scenario(text=s.text, chunks=s.chunks, model=s.model))[:4]  # through the 1st delta
    if s.failure == "malformed":
        return [head[0], b"event: content_block_start\ndata: {not json\n\n"]
    if s.failure == "error_event":
        return [*head, _sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})]
    return head


async def _send_stream(request: web.Request, response: web.StreamResponse, s: Scenario) -> None:
    await response.prepare(request)
    for event in _failing_stream(s) if s.failure else stream_events(s):
        await response.write(event)
    if s.failure == "cut":
        # close(), not abort(), which would discard bytes still in our write buffer.
        await asyncio.sleep(CUT_AFTER_S)
        assert request.transport is not None
        request.transport.close()
        return
    await response.write_eof()


def whole_message(s: Scenario) -> dict[str, Any]:
    """The Message of a successful scenario, not streamed: the blocks its stream would send, each whole."""
    content: list[dict[str, Any]] = []
    if s.redacted_thinking is not None:
        content.append({"type": "redacted_thinking", "data": s.redacted_thinking})
    if s.thinking is not None:
        content.append({"type": "thinking", "thinking": s.thinking, "signature": s.signature})
    if s.text:
        content.append({"type": "text", "text": s.text})
    if s.tool_use is not None:
        tool = s.tool_use
        content.append({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
    if s.text_after_tool_use:
        content.append({"type": "text", "text": s.text_after_tool_use})
    usage = {
        "input_tokens": s.input_tokens,
        "cache_creation_input_tokens": s.cache_creation_input_tokens,
        "cache_read_input_tokens": s.cache_read_input_tokens,
        "output_tokens": s.output_tokens,
    }
    message = {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": s.model,
        "content": content,
    }
    stop_reason = s.stop_reason or ("tool_use" if s.tool_use else "end_turn")
    return {**message, "stop_reason": stop_reason, "stop_sequence": s.stop_sequence, "usage": usage}


async def _whole(request: web.Request, s: Scenario) -> web.Response:
    """A non-streamed answer. Its failure modes: `cut` drops the connection instead, `truncated` and
    `malformed` answer a 200 whose JSON is cut short, `error_event` is the HTTP 529 it would be."""
    if s.failure == "cut":
        await asyncio.sleep(CUT_AFTER_S)
        assert request.transport is not None
        request.transport.close()
        return web.Response()
    if s.failure in ("truncated", "malformed"):
        return web.Response(text=json.dumps(whole_message(s))[:40], content_type="application/json")
    if s.failure == "error_event":
        return _error(*HTTP_FAILURES["overloaded"])
    return web.json_response(whole_message(s))


def build_app(fake: AnthropicFake) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        headers = {name.lower(): value for name, value in request.headers.items()}
        fake.requests.append(RecordedRequest(request.path, headers, body))
        s = fake.next_scenario()
        if s.first_byte_delay:
            await asyncio.sleep(s.first_byte_delay)
        if s.failure in HTTP_FAILURES:
            return _error(*HTTP_FAILURES[s.failure])
        if s.failure == "http_error":
            return _error(s.error_status, s.error_type, s.error_message)
        if s.api_key is not None and headers.get("x-api-key") != s.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in headers:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if problem := _invalid_body(body):
            return _error(400, "invalid_request_error", problem)
        if body.get("stream") is not True:
            return await _whole(request, _step(s, body))
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        with suppress(ConnectionResetError):  # the client went away (a timeout or a cancelled request)
            await _send_stream(request, response, _step(s, body))
        return response

    async def count_tokens(request: web.Request) -> web.Response:
        """POST /v1/messages/count_tokens as Anthropic documents it: a Messages body without max_tokens or
        stream (it refuses other fields), answered with `{"input_tokens": n}`. The fake's n: one per word of
        the text it was sent, plus 3 per message and 5 for a system prompt, so a test can tell its count
        from the gateway's estimate."""
        body = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        fake.requests.append(RecordedRequest(request.path, headers, body))
        if headers.get("x-api-key") != (fake.scenarios[0].api_key or headers.get("x-api-key")):
            return _error(401, "authentication_error", "invalid x-api-key")
        if extra := sorted(set(body) - {"model", "messages", "system", "tools", "tool_choice", "thinking"}):
            return _error(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
        words = sum(len(str(_text_of(m.get("content"))).split()) + 3 for m in body.get("messages", []))
        system = body.get("system")
        words += len(str(_text_of(system)).split()) + 5 if system else 0
        return web.json_response({"input_tokens": words})

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    return app


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


@contextmanager
def anthropic_fake(*scenarios: Scenario) -> Iterator[AnthropicFake]:
    fake = AnthropicFake(list(scenarios) or [Scenario()])
    with FakeServer(build_app(fake)) as server:
        fake.url = server.url
        yield fake


def anthropic_route(
    url: str,
    *,
    api_key: str = "sk-ant-test",
    timeout: float = 5.0,
    model: str = "claude-test-1",
    **options: Any,
) -> RouteInfo:
    """A route to a fake (or any Anthropic-compatible server at `url`)."""
    provider = ProviderInfo("anthropic", "anthropic", f"{url}/v1", api_key, timeout)
    return RouteInfo(provider, model, dict(options))

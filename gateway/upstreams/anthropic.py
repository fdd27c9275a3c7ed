"""The Anthropic Messages API dialect (kind `anthropic`): POST {base_url}/messages, streamed when the client
streams; a non-streamed request asks for the whole Message (ADR 0019), read as the stream that would have
sent it (each block whole in one delta), so both give the same events.

Request: the canonical request → the Messages body (gateway/upstreams/anthropic_request.py says how).
Response: a `redacted_thinking` block becomes a reasoning block whose one delta carries its data as the
signature, marked redacted. Anthropic does not count thinking tokens apart: `reasoning_tokens` is 0 (they
are inside `completion_tokens` = `output_tokens`). Unknown block types (server tools, citations) are skipped.
"""

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from core.encoding import compact_json, read_json
from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Event,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.upstreams.anthropic_request import COUNT_FIELDS, build_body
from gateway.upstreams.base import RouteInfo, UpstreamAdapter, UpstreamError, error_for_status
from gateway.upstreams.http1 import HttpError, UpstreamClient, UpstreamResponse
from gateway.upstreams.registry import register
from gateway.upstreams.sse import iter_sse

API_VERSION = "2023-06-01"

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_TYPES: dict[str, ErrorCode] = {
    "authentication_error": ErrorCode.PROVIDER_AUTH,
    "permission_error": ErrorCode.PROVIDER_AUTH,
    "billing_error": ErrorCode.INVALID_REQUEST,  # as an upstream 402: not the client's insufficient_credits
    "not_found_error": ErrorCode.PROVIDER_UNAVAILABLE,  # the route's model is gone; the next route may do
    "rate_limit_error": ErrorCode.PROVIDER_RATE_LIMIT,
    "overloaded_error": ErrorCode.PROVIDER_OVERLOADED,
    "api_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "timeout_error": ErrorCode.PROVIDER_TIMEOUT,
    "request_too_large": ErrorCode.PAYLOAD_TOO_LARGE,
}
# Anthropic refuses a too-long prompt as a plain invalid_request_error; only its words tell.
_CONTEXT_HINTS = ("prompt is too long", "context limit", "context window", "context length")


# --- Anthropic stream → canonical events --------------------------------------------------
def error_code(status: int | None, error: dict[str, Any]) -> ErrorCode:
    """The taxonomy code of an Anthropic error, an HTTP failure (`status`) or an in-stream `error` event:
    its `type` first, then the status; its words only to tell a too-long prompt among invalid requests."""
    kind = str(error.get("type", ""))
    if kind in ERROR_TYPES:
        return ERROR_TYPES[kind]
    code = ErrorCode.PROVIDER_UNAVAILABLE if status is None else error_for_status(status)
    if code is ErrorCode.INVALID_REQUEST or kind == "invalid_request_error":
        message = str(error.get("message", "")).lower()
        if any(hint in message for hint in _CONTEXT_HINTS):
            return ErrorCode.CONTEXT_LENGTH_EXCEEDED
        return ErrorCode.INVALID_REQUEST
    return code


def _failure(status: int | None, error: dict[str, Any], raw: str) -> UpstreamError:
    return UpstreamError.from_upstream(
        error_code(status, error),
        str(error.get("message") or ""),
        detail=f"anthropic: {f'HTTP {status}' if status else 'stream error'}: {raw[:2000]}",
        status=status,
    )


def _http_error(status: int, raw: str) -> UpstreamError:
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    return _failure(status, error if isinstance(error, dict) else {}, raw)


@dataclass(slots=True)
class _StreamState:
    open_blocks: set[int] = field(default_factory=set)
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    done: bool = False

    def final_usage(self) -> Usage:
        cache_read = self.usage.get("cache_read_input_tokens") or 0
        prompt = (self.usage.get("input_tokens") or 0) + cache_read
        cache_write = self.usage.get("cache_creation_input_tokens") or 0
        return Usage(
            prompt + cache_write,
            self.usage.get("output_tokens") or 0,
            cached_prompt_tokens=cache_read,
            cache_write_prompt_tokens=cache_write,
        )


def _block_start(index: int, block: dict[str, Any]) -> list[Event]:
    kind = block["type"]
    if kind == "text":
        return [BlockStart(index, "text"), *([TextDelta(index, block["text"])] if block.get("text") else [])]
    if kind == "thinking":
        return [BlockStart(index, "reasoning")]
    if kind == "redacted_thinking":
        redacted = ReasoningDelta(index, "", signature=block["data"], redacted=True)
        return [BlockStart(index, "reasoning"), redacted]
    if kind == "tool_use":
        return [BlockStart(index, "tool_call", tool_call_id=block["id"], tool_name=block["name"])]
    return []


def _block_delta(index: int, delta: dict[str, Any]) -> list[Event]:
    kind = delta["type"]
    if kind == "text_delta":
        return [TextDelta(index, delta["text"])]
    if kind == "thinking_delta":
        return [ReasoningDelta(index, delta["thinking"])]
    if kind == "signature_delta":
        return [ReasoningDelta(index, "", signature=delta["signature"])]
    if kind == "input_json_delta" and delta["partial_json"]:
        return [ToolCallDelta(index, delta["partial_json"])]
    return []


def _events_for(data: dict[str, Any], state: _StreamState) -> list[Event]:
    kind = data["type"]
    if kind == "message_start":
        state.usage.update(data["message"].get("usage") or {})
    elif kind == "content_block_start":
        events = _block_start(data["index"], data["content_block"])
        if events:
            state.open_blocks.add(data["index"])
        return events
    elif kind == "content_block_delta" and data["index"] in state.open_blocks:
        return _block_delta(data["index"], data["delta"])
    elif kind == "content_block_stop" and data["index"] in state.open_blocks:
        state.open_blocks.discard(data["index"])
        return [BlockStop(data["index"])]
    elif kind == "message_delta":
        state.stop_reason = data["delta"].get("stop_reason") or state.stop_reason
        state.stop_sequence = data["delta"].get("stop_sequence") or state.stop_sequence
        state.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
    elif kind == "message_stop":
        state.done = True
        finish = Finish(STOP_REASONS.get(state.stop_reason or "", "stop"), stop_sequence=state.stop_sequence)
        return [finish, state.final_usage()]
    elif kind == "error":
        error = data.get("error") or {}
        raise _failure(None, error if isinstance(error, dict) else {}, json.dumps(data))
    return []


async def _read_stream(response: UpstreamResponse) -> AsyncGenerator[Event, None]:
    state = _StreamState()
    async for sse in iter_sse(response):
        try:
            data = read_json(sse.data)
            events = _events_for(data, state)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError.provider_side(
                ErrorCode.PROVIDER_UNAVAILABLE, f"malformed anthropic SSE: {exc!r}"
            ) from exc
        for event in events:
            yield event
        if state.done:
            return
    raise UpstreamError.provider_side(
        ErrorCode.PROVIDER_UNAVAILABLE, "anthropic stream ended before message_stop"
    )


def _refusal(response: UpstreamResponse, text: str) -> UpstreamError:
    """An HTTP error answer (streamed or not), with the Retry-After it came with."""
    error = _http_error(response.status, text)
    error.retry_after = response.headers.get("retry-after")
    return error


def _transport_failure(exc: TimeoutError | HttpError, seconds: float) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamError.provider_side(
            ErrorCode.PROVIDER_TIMEOUT, f"anthropic timed out after {seconds}s"
        )
    return UpstreamError.provider_side(
        ErrorCode.PROVIDER_UNAVAILABLE, f"anthropic connection failed: {exc!r}"
    )


def message_events(message: dict[str, Any]) -> list[Event]:
    """A whole Message's events: those of the stream that would have sent it, from `message_start` to
    `message_stop`, each content block in one delta."""
    if message.get("type") == "error":
        error = message.get("error")
        raise _failure(None, error if isinstance(error, dict) else {}, json.dumps(message))
    state = _StreamState()
    events = _events_for({"type": "message_start", "message": {"usage": message.get("usage") or {}}}, state)
    for index, block in enumerate(message["content"]):
        start = {"type": "content_block_start", "index": index, "content_block": _whole_block_start(block)}
        events += _events_for(start, state)
        for delta in _whole_block_deltas(block):
            events += _events_for({"type": "content_block_delta", "index": index, "delta": delta}, state)
        events += _events_for({"type": "content_block_stop", "index": index}, state)
    stop = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events += _events_for({"type": "message_delta", "delta": stop}, state)
    return events + _events_for({"type": "message_stop"}, state)


def _whole_block_start(block: dict[str, Any]) -> dict[str, Any]:
    """A whole block as its `content_block_start` would say it: a text block starts with its text, the
    others empty, their content following in deltas."""
    kind = block["type"]
    if kind == "thinking":
        return {"type": "thinking", "thinking": ""}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    return block


def _whole_block_deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "thinking":
        signature = (
            [{"type": "signature_delta", "signature": block["signature"]}] if block.get("signature") else []
        )
        return [{"type": "thinking_delta", "thinking": block["thinking"]}, *signature]
    if kind == "tool_use" and block.get("input"):  # a call without arguments streams no JSON either
        return [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
    return []


@register
class AnthropicAdapter(UpstreamAdapter):
    kind = "anthropic"
    reads_documents = True
    label = "Anthropic"

    def headers(self, route: RouteInfo) -> dict[str, str]:
        headers = {
            "x-api-key": route.provider.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        if beta := route.options.get("anthropic_beta"):
            headers["anthropic-beta"] = str(beta)
        return headers

    async def count_prompt_tokens(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> int | None:
        """POST {base_url}/messages/count_tokens: Anthropic's own count, free of charge."""
        body = {name: value for name, value in build_body(request, route).items() if name in COUNT_FIELDS}
        url = f"{route.provider.base_url.rstrip('/')}/messages/count_tokens"
        headers = {**self.headers(route), "accept": "application/json"}
        seconds = route.provider.timeout_seconds
        async with client.post(url, compact_json(body), headers, timeout=seconds) as response:
            if response.status != 200:
                raise _http_error(response.status, await response.text(errors="replace"))
            return int((await response.json())["input_tokens"])

    def stream(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        return (
            self._streamed(request, route, client) if request.stream else self._whole(request, route, client)
        )

    async def _whole(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        """A non-streamed attempt: the whole Message, asked for and read at once, then its events."""
        provider = route.provider
        url = f"{provider.base_url.rstrip('/')}/messages"
        body = build_body(request, route)
        seconds = provider.timeout_seconds
        headers = {**self.headers(route), "accept": "application/json"}
        try:
            async with client.post(url, compact_json(body), headers, timeout=seconds) as response:
                raw = await response.read()
                if response.status != 200:
                    raise _refusal(response, raw.decode("utf-8", errors="replace"))
        except (TimeoutError, HttpError) as exc:
            raise _transport_failure(exc, seconds) from exc
        try:
            events = message_events(read_json(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError.provider_side(
                ErrorCode.PROVIDER_UNAVAILABLE, f"malformed anthropic message: {exc!r}"
            ) from exc
        for event in events:
            yield event

    async def _streamed(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        provider = route.provider
        url = f"{provider.base_url.rstrip('/')}/messages"
        body = build_body(request, route)
        seconds = provider.timeout_seconds
        try:
            # A stream may run long: `seconds` bounds the wait for its head, then each silence in it.
            async with client.post(
                url, compact_json(body), self.headers(route), timeout=seconds, read_timeout=seconds
            ) as response:
                if response.status != 200:
                    raise _refusal(response, await response.text(errors="replace"))
                async for event in _read_stream(response):
                    yield event
        except (TimeoutError, HttpError) as exc:
            raise _transport_failure(exc, seconds) from exc

"""Anthropic Messages output: canonical events → the message, its content-block SSE protocol, and errors.

- Blocks are renumbered from 0 in the order they start, whatever the upstream's indexes. A thinking block
  carries the upstream's signature when the upstream is Anthropic, else an empty string: a made-up signature
  would be rejected when the client replays the block to Anthropic. A redacted block is Anthropic's
  `redacted_thinking` with its data. A thinking block opens with its first delta, so an empty one is not sent.
- Usage has Anthropic semantics: `input_tokens` excludes cache reads (`cache_read_input_tokens`) and cache
  writes (`cache_creation_input_tokens`). `usage.cost` (USD) is a HyperInfer extension, as in the other
  formats.
- Server tools (gateway/ingress/tool_shapes.py): a `server_tool_use` block and its result block; the next
  text block cites web_search's results (a `citations_delta` right after its start, streamed). With tool
  events on, `hi_tool_started` / `hi_tool_completed` events too (the SDK skips events it does not know).
- Errors: `{"type": "error", "error": {type, code, message}, "request_id"}`, before the first byte as the
  body, after it as an `error` event.
"""

import json
from typing import Any

from core.encoding import compact_json
from core.envelopes import anthropic_error_body as error_body
from core.errors import ErrorCode
from gateway.canonical import (
    BlockStart,
    BlockStop,
    Citation,
    Event,
    Finish,
    ReasoningDelta,
    ServerToolCall,
    ServerToolResult,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.fold import Folded, FoldedReasoning, FoldedServerTool, FoldedText
from gateway.ingress.base import provider_metadata
from gateway.ingress.tool_shapes import (
    cited_by_text,
    completed_payload,
    messages_citation,
    messages_result_block,
    server_tool_use_block,
    started_payload,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error classes (https://docs.anthropic.com/en/api/errors); the taxonomy code rides alongside.


# --- Response -----------------------------------------------------------------------------
def usage_object(usage: Usage, cost_usd: float) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_write_prompt_tokens,
        "cache_creation_input_tokens": usage.cache_write_prompt_tokens,
        "cache_read_input_tokens": usage.cached_prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cost": cost_usd,
        **provider_metadata(usage),
    }


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def tool_input(arguments: str) -> dict[str, Any]:
    """The tool call's arguments as the `input` object; `{}` when empty or not a JSON object."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _thinking(text: str, signature: str | None, redacted: bool) -> dict[str, Any]:
    if redacted:
        return {"type": "redacted_thinking", "data": signature}
    return {"type": "thinking", "thinking": text, "signature": signature or ""}


def content_blocks(folded: Folded) -> list[dict[str, Any]]:
    """The answer's content blocks in the order the upstream sent them (empty ones left out); a server tool
    call is two, its use and its result, and the next text block cites what web_search found."""
    blocks: list[dict[str, Any]] = []
    cited: list[Citation] = []
    for block in folded.blocks:
        if isinstance(block, FoldedText):
            if block.text:
                text: dict[str, Any] = {"type": "text", "text": block.text}
                if cited:
                    text["citations"] = [messages_citation(citation) for citation in cited]
                    cited = []
                blocks.append(text)
        elif isinstance(block, FoldedServerTool):
            call = ServerToolCall(0, block.id, block.name, block.arguments)
            blocks.append(server_tool_use_block(call))
            if block.result is not None:
                blocks.append(messages_result_block(block.result))
                cited += cited_by_text(block.result)
        elif isinstance(block, FoldedReasoning):
            if block.text or block.signature:
                blocks.append(_thinking(block.text, block.signature, block.redacted))
        else:
            tool_use = {"type": "tool_use", "id": block.id, "name": block.name}
            blocks.append({**tool_use, "input": tool_input(block.arguments)})
    return blocks


def response_object(
    *, request_id: str, model: str, created: int, folded: Folded, usage: Usage, cost_usd: float
) -> dict[str, Any]:
    return {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(folded),
        "stop_reason": stop_reason(folded.finish_reason),
        "stop_sequence": folded.stop_sequence,
        "usage": usage_object(usage, cost_usd),
    }


# --- Stream -------------------------------------------------------------------------------
_EMPTY_BLOCKS = {
    "text": {"type": "text", "text": ""},
    "reasoning": {"type": "thinking", "thinking": "", "signature": ""},
}


class MessageStream:
    """Canonical events as Anthropic's content-block SSE protocol for one streamed response."""

    def __init__(self, *, request_id: str, model: str, tool_events: bool = False) -> None:
        self._request_id = request_id
        self._model = model
        self._tool_events = tool_events
        self._cited: list[Citation] = []  # web_search results the next text block cites
        self._positions: dict[int, int] = {}  # canonical block index → Anthropic content index
        self._open: set[int] = set()  # canonical indexes whose content_block_stop is not sent yet
        self._finish_reason: str | None = None
        self._stop_sequence: str | None = None

    def start(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": f"msg_{self._request_id}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The prompt's size and the cost are known only at the end: message_delta carries the real
            # figures. No `cost` here: the SDKs keep message_start's extra fields, and a 0 would stay.
            "usage": {k: v for k, v in usage_object(Usage(0, 0), 0.0).items() if k != "cost"},
        }
        return [_event("message_start", {"message": message}), _event("ping", {})]

    def render(self, event: Event) -> list[bytes]:
        match event:
            case BlockStart(index=index, kind=kind, tool_call_id=call_id, tool_name=name) if (
                kind != "reasoning"
            ):
                return self._open_block(index, kind, call_id, name)
            case TextDelta(index=index, text=text) if text:
                return [
                    *self._ensure_open(index, "text"),
                    self._delta(index, {"type": "text_delta", "text": text}),
                ]
            case ReasoningDelta(index=index, signature=signature, redacted=True) if signature:
                return self._redacted(index, signature)
            case ReasoningDelta(index=index, text=text, signature=signature) if text or signature:
                frames = self._ensure_open(index, "reasoning")
                if text:
                    frames.append(self._delta(index, {"type": "thinking_delta", "thinking": text}))
                if signature:
                    frames.append(self._delta(index, {"type": "signature_delta", "signature": signature}))
                return frames
            case ToolCallDelta(index=index, arguments=arguments) if arguments:
                frames = self._ensure_open(index, "tool_call")
                return [*frames, self._delta(index, {"type": "input_json_delta", "partial_json": arguments})]
            case BlockStop(index=index):
                return self._close_block(index)
            case ServerToolCall(index=index, arguments=arguments):
                frames = self._tool_event("hi_tool_started", started_payload(event))
                frames += self._start(index, server_tool_use_block(event))
                if arguments:
                    frames.append(self._delta(index, {"type": "input_json_delta", "partial_json": arguments}))
                return [*frames, *self._close_block(index)]
            case ServerToolResult(index=index):
                self._cited += cited_by_text(event)
                frames = [*self._start(index, messages_result_block(event)), *self._close_block(index)]
                return [*frames, *self._tool_event("hi_tool_completed", completed_payload(event))]
            case Finish(reason=reason, stop_sequence=stop_sequence):
                self._finish_reason, self._stop_sequence = reason, stop_sequence
        return []

    def finish(self, usage: Usage, cost_usd: float) -> list[bytes]:
        frames = [frame for index in sorted(self._open) for frame in self._close_block(index)]
        delta = {
            "delta": {"stop_reason": stop_reason(self._finish_reason), "stop_sequence": self._stop_sequence},
            "usage": usage_object(usage, cost_usd),
        }
        return [*frames, _event("message_delta", delta), _event("message_stop", {})]

    def error(self, code: ErrorCode, message: str) -> list[bytes]:
        return [_event("error", error_body(code, message, self._request_id))]

    def _open_block(self, index: int, kind: str, call_id: str | None, name: str | None) -> list[bytes]:
        if kind == "tool_call":
            position = len(self._positions)
            tool_use = {
                "type": "tool_use",
                "id": call_id or f"toolu_{position}",
                "name": name or "",
                "input": {},
            }
            return self._start(index, tool_use)
        frames = self._start(index, dict(_EMPTY_BLOCKS[kind]))
        if kind == "text" and frames and self._cited:
            for citation in self._cited:
                delta = {"type": "citations_delta", "citation": messages_citation(citation)}
                frames.append(self._delta(index, delta))
            self._cited = []
        return frames

    def _tool_event(self, kind: str, payload: dict[str, Any]) -> list[bytes]:
        return [_event(kind, payload)] if self._tool_events else []

    def _start(self, index: int, block: dict[str, Any]) -> list[bytes]:
        if index in self._positions:
            return []
        self._positions[index] = position = len(self._positions)
        self._open.add(index)
        return [_event("content_block_start", {"index": position, "content_block": block})]

    def _redacted(self, index: int, data: str) -> list[bytes]:
        return [*self._start(index, {"type": "redacted_thinking", "data": data}), *self._close_block(index)]

    def _ensure_open(self, index: int, kind: str) -> list[bytes]:
        """A delta for a block whose start never came (a lenient upstream) opens it first."""
        return self._open_block(index, kind, None, None)

    def _close_block(self, index: int) -> list[bytes]:
        if index not in self._open:
            return []
        self._open.discard(index)
        return [_event("content_block_stop", {"index": self._positions[index]})]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self._positions[index], "delta": delta})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    payload = data if kind == "error" else {"type": kind, **data}
    return b"event: " + kind.encode() + b"\ndata: " + compact_json(payload) + b"\n\n"

"""What an OpenAI-style answer says, read chunk by chunk: the state of one attempt (which block is open, the
finish, the usage) and the events each delta makes (gateway/upstreams/openai_compatible.py reads the chunks).
A block opens when its first delta arrives and closes when a different block begins or the finish arrives,
so indices follow arrival order (reasoning 0, text 1, tool calls 2, 3, ...) and every block is stopped
before `Finish`."""

import json
from dataclasses import dataclass, field
from typing import Any

from core.errors import ErrorCode
from gateway.canonical import (
    BlockKind,
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
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.openai_errors import Json

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def parse_usage(raw: Json) -> Usage:
    prompt = raw.get("prompt_tokens") or 0
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=raw.get("completion_tokens") or 0,
        cached_prompt_tokens=min(cached, prompt),
        reasoning_tokens=(raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0,
    )


def reached_the_limit(request: CanonicalRequest, state: "StreamState") -> bool:
    limit, usage = request.max_tokens, state.usage
    return limit is not None and usage is not None and usage.completion_tokens >= limit


@dataclass(slots=True)
class StreamState:
    """What one attempt has seen so far; `completion` keeps the generated text for dialects that count it."""

    next_index: int = 0
    open_key: str | None = None
    open_index: int = -1
    tool_blocks: dict[int, int] = field(default_factory=dict)
    finish: FinishReason | None = None
    usage: Usage | None = None
    deltas: int = 0
    # Chunks that carried output, empty ones included, the role frame and an empty closing one not (a
    # server streaming token by token sends one per token or more, some with empty text).
    output_chunks: int = 0
    completion: list[str] = field(default_factory=list)
    provider_metadata: dict[str, Any] = field(default_factory=dict)  # handle_chunk_extras keeps it here

    def open(
        self, key: str, kind: BlockKind, call_id: str | None = None, name: str | None = None
    ) -> list[Event]:
        events = self.close()
        self.open_key, self.open_index = key, self.next_index
        self.next_index += 1
        return [*events, BlockStart(self.open_index, kind, tool_call_id=call_id, tool_name=name)]

    def close(self) -> list[Event]:
        if self.open_key is None:
            return []
        self.open_key = None
        return [BlockStop(self.open_index)]

    def text(self, kind: BlockKind, text: str) -> list[Event]:
        events = [] if self.open_key == kind else self.open(kind, kind)
        self.deltas += 1
        self.completion.append(text)
        delta = TextDelta(self.open_index, text) if kind == "text" else ReasoningDelta(self.open_index, text)
        return [*events, delta]

    def tool_call(self, call: Json) -> list[Event]:
        position = call.get("index")
        if position is None:  # some servers omit the index: a new id means a new call
            position = len(self.tool_blocks) if call.get("id") else max(self.tool_blocks, default=0)
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        key = f"tool:{position}"
        events: list[Event] = []
        if position not in self.tool_blocks:
            call_id = call.get("id") or f"call_{position}"
            events = self.open(key, "tool_call", call_id, function.get("name") or "")
            self.tool_blocks[position] = self.open_index
        elif self.open_key != key:
            if arguments:
                raise UpstreamError.provider_side(
                    ErrorCode.PROVIDER_UNAVAILABLE, "tool call arguments arrived interleaved"
                )
            return []
        if arguments:
            self.deltas += 1
            self.completion.append(arguments)
            events.append(ToolCallDelta(self.open_index, arguments))
        return events

    def finish_with(self, reason: str) -> list[Event]:
        if self.finish is not None:
            return []
        mapped = _FINISH_REASONS.get(reason, "stop")
        # Some servers report "stop" after calling tools; clients need "tool_calls" to run them.
        self.finish = "tool_calls" if mapped == "stop" and self.tool_blocks else mapped
        return [*self.close(), Finish(self.finish)]

"""OpenAI Chat Completions: request → canonical, canonical events → chunks and the final object.

Reasoning that an upstream signs (Anthropic thinking) also comes as `reasoning_details`, in OpenRouter's
shape: `{type: "reasoning.text", text, signature, format}`, or `{type: "reasoning.encrypted", data, format}`
for a redacted block. A client that sends the assistant message back with it has the thinking replayed to
Anthropic verbatim (without it, Anthropic refuses a tool round trip with thinking on). Streamed, `reasoning`
carries the text, and a block's `reasoning_details` entry (with its whole text) comes with its signature.
A HyperInfer extension: the request schema marks it (`x-hyperinfer-extension`).
"""

import time
from typing import Any

from core.encoding import compact_json
from core.envelopes import openai_error_body as error_body
from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    Block,
    BlockStart,
    CanonicalRequest,
    Event,
    FileBlock,
    Finish,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningDelta,
    ResponseFormat,
    ServerToolCall,
    ServerToolResult,
    TextBlock,
    TextDelta,
    Tool,
    ToolCallBlock,
    ToolCallDelta,
    ToolChoice,
    ToolResultBlock,
    ToolResultPart,
    Usage,
)
from gateway.fold import Folded, FoldedReasoning
from gateway.ingress.base import provider_metadata
from gateway.ingress.tool_shapes import chat_annotation, chat_image, completed_payload, started_payload
from gateway.ingress.validation import (
    load_validator,
    openai_role,
    plugins,
    reasoning_control,
    refuse_unrenderable,
    server_tool_uses,
    token_count,
    tool_choice_mode,
    validate_or_raise,
    wants_tool_events,
)

FORMAT = "chat_completions"
PROMPT_FIELD = "messages"
PATH = "/api/v1/chat/completions"
LABEL = "OpenAI Chat Completions"
REASONING_FORMAT = "anthropic-claude-v1"  # whose signature a reasoning detail carries
REQUEST_VALIDATOR = load_validator("chat_completions.request.json")
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "response_format",
        "reasoning_effort",
        "stream",
        "stream_options",
        "user",
        "plugins",
        "hi_tool_events",
    }
)


# --- Request ------------------------------------------------------------------------------
def parse_request(body: dict[str, Any]) -> CanonicalRequest:
    validate_or_raise(REQUEST_VALIDATOR, body)
    refuse_unrenderable(body)
    switched_on = plugins(body)
    return CanonicalRequest(
        model=body["model"],
        messages=[_message(m) for m in body["messages"]],
        tools=[_tool(t["function"]) for t in body.get("tools") or []],
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=parallel_tool_calls(body),
        max_tokens=token_count(body.get("max_completion_tokens") or body.get("max_tokens")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[body["stop"]] if isinstance(body.get("stop"), str) else list(body.get("stop") or []),
        response_format=_response_format(body.get("response_format")),
        reasoning=reasoning_control(body.get("reasoning_effort")),
        stream=bool(body.get("stream")),
        user=body.get("user"),
        extra={key: value for key, value in body.items() if key not in _MAPPED},
        server_tools=server_tool_uses(switched_on, "plugins", "id"),
        tool_events=wants_tool_events(body, switched_on),
    )


def parallel_tool_calls(body: dict[str, Any]) -> bool | None:
    value = body.get("parallel_tool_calls")
    if value is not None and not isinstance(value, bool):
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "parallel_tool_calls: must be a boolean", param="parallel_tool_calls"
        )
    return value


def _message(raw: dict[str, Any]) -> Message:
    role = openai_role(raw["role"])
    content = raw.get("content")
    blocks: list[Block] = list(_reasoning_blocks(raw))
    parts: list[ToolResultPart] = (
        [_part(p) for p in content]
        if isinstance(content, list)
        else ([TextBlock(content)] if content else [])
    )
    if role == "tool":
        return Message("tool", [ToolResultBlock(tool_call_id=raw.get("tool_call_id", ""), content=parts)])
    blocks.extend(parts)
    for call in raw.get("tool_calls") or []:
        blocks.append(
            ToolCallBlock(
                id=call["id"], name=call["function"]["name"], arguments=call["function"]["arguments"]
            )
        )
    return Message(role, blocks, name=raw.get("name"))


def _reasoning_blocks(raw: dict[str, Any]) -> list[ReasoningBlock]:
    text = raw.get("reasoning") or ""
    blocks: list[ReasoningBlock] = []
    for detail in raw.get("reasoning_details") or []:
        if detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append(ReasoningBlock("", signature=detail["data"], redacted=True))
        elif detail.get("type") == "reasoning.text":
            # A streamed answer's detail has the signature only: its text is the message's `reasoning`.
            blocks.append(ReasoningBlock(detail.get("text") or text, signature=detail.get("signature")))
        elif detail.get("type") == "reasoning.summary" and detail.get("summary"):
            blocks.append(ReasoningBlock(detail["summary"]))
    if text and not any(block.text for block in blocks):
        blocks.insert(0, ReasoningBlock(text))
    return blocks


def reasoning_detail(block: FoldedReasoning, index: int) -> dict[str, Any] | None:
    """The `reasoning_details` entry of a signed (or redacted) reasoning block; None for an unsigned one."""
    if not block.signature:
        return None
    if block.redacted:
        return {
            "type": "reasoning.encrypted",
            "data": block.signature,
            "format": REASONING_FORMAT,
            "index": index,
        }
    return {
        "type": "reasoning.text",
        "text": block.text,
        "signature": block.signature,
        "format": REASONING_FORMAT,
        "index": index,
    }


def _part(raw: dict[str, Any]) -> ToolResultPart:
    if raw["type"] == "text":
        return TextBlock(raw["text"])
    if raw["type"] == "image_url":
        return ImageBlock(url=raw["image_url"]["url"], detail=raw["image_url"].get("detail"))
    return FileBlock(**raw["file"])


def _tool(function: dict[str, Any]) -> Tool:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(
        name=function["name"],
        description=function.get("description"),
        parameters=parameters,
        strict=function.get("strict"),
    )


def _tool_choice(raw: str | dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return ToolChoice(mode=tool_choice_mode(raw))
    return ToolChoice(mode="tool", name=raw["function"]["name"])


def _response_format(raw: dict[str, Any] | None) -> ResponseFormat | None:
    if raw is None:
        return None
    schema = raw.get("json_schema") or {}
    return ResponseFormat(
        type=raw["type"], name=schema.get("name"), schema=schema.get("schema"), strict=schema.get("strict")
    )


# --- Response -----------------------------------------------------------------------------
def usage_object(usage: Usage, cost_usd: float) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": cost_usd,
        **provider_metadata(usage),
    }


def response_object(
    *, request_id: str, model: str, created: int, folded: Folded, usage: Usage, cost_usd: float
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": folded.text or (None if folded.tool_calls else ""),
    }
    if folded.reasoning:
        message["reasoning"] = folded.reasoning
    # Numbered as the stream numbers them: the signed blocks only, in order.
    signed = [block for block in folded.reasoning_blocks if block.signature]
    if details := [reasoning_detail(block, index) for index, block in enumerate(signed)]:
        message["reasoning_details"] = details
    if annotations := [chat_annotation(citation) for citation in folded.citations]:
        message["annotations"] = annotations
    results = [tool.result for tool in folded.server_tools if tool.result is not None]
    if images := [chat_image(image) for result in results for image in result.images]:
        message["images"] = images
    if folded.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in folded.tool_calls
        ]
    return {
        "id": f"gen-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": folded.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_object(usage, cost_usd),
    }


class ChunkRenderer:
    """Renders canonical events as `chat.completion.chunk` objects for one streamed response."""

    def __init__(self, *, request_id: str, model: str) -> None:
        self._base = {
            "id": f"gen-{request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._tool_index: dict[int, int] = {}  # canonical block index → OpenAI tool_calls index
        self._reasoning = FoldedReasoning()  # the reasoning block being streamed, for its detail
        self._details = 0  # reasoning_details entries sent

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def role_chunk(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def render(self, event: Event) -> dict[str, Any] | None:
        match event:
            case TextDelta(text=text):
                return self._chunk({"content": text})
            case ReasoningDelta(text=text, signature=signature, redacted=redacted) if text or signature:
                return self._chunk(self._reasoning_delta(text, signature, redacted))
            case BlockStart(kind="reasoning"):
                self._reasoning = FoldedReasoning()
            case BlockStart(kind="tool_call", index=index, tool_call_id=call_id, tool_name=name):
                self._tool_index[index] = position = len(self._tool_index)
                call = {
                    "index": position,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                return self._chunk({"tool_calls": [call]})
            case ToolCallDelta(index=index, arguments=arguments):
                call = {"index": self._tool_index.get(index, 0), "function": {"arguments": arguments}}
                return self._chunk({"tool_calls": [call]})
            case Finish(reason=reason):
                return self._chunk({}, finish_reason=reason)
        return None

    def _reasoning_delta(self, text: str, signature: str | None, redacted: bool) -> dict[str, Any]:
        """`reasoning` for the text; once the block is signed, its detail with the block's whole text."""
        delta: dict[str, Any] = {"reasoning": text} if text else {}
        self._reasoning.add(text)
        if signature:
            self._reasoning.signature, self._reasoning.redacted = signature, redacted
            detail = reasoning_detail(self._reasoning, self._details)
            self._details += 1
            delta["reasoning_details"] = [detail]
            self._reasoning = FoldedReasoning()
        return delta

    def delta_chunk(self, delta: dict[str, Any]) -> dict[str, Any]:
        return self._chunk(delta)

    def tool_event_chunk(self, event: dict[str, Any]) -> dict[str, Any]:
        return {**self._base, "choices": [], "hi_tool_event": event}

    def usage_chunk(self, usage: Usage, cost_usd: float) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage_object(usage, cost_usd)}


class ChatStream:
    """The SSE protocol: `data:` frames of chunks, a final usage-only chunk always, then `data: [DONE]`.
    A server tool's citations and images come as `annotations` and `images` deltas when it finishes; with
    tool events on, a chunk with no choices and a `hi_tool_event` at its start and its end."""

    def __init__(self, *, request_id: str, model: str, tool_events: bool = False) -> None:
        self._chunks = ChunkRenderer(request_id=request_id, model=model)
        self._request_id = request_id
        self._tool_events = tool_events

    def start(self) -> list[bytes]:
        return [frame(self._chunks.role_chunk())]

    def render(self, event: Event) -> list[bytes]:
        if isinstance(event, ServerToolCall):
            return self._tool_event({"type": "tool.started", **started_payload(event)})
        if isinstance(event, ServerToolResult):
            return self._tool_result(event)
        chunk = self._chunks.render(event)
        return [] if chunk is None else [frame(chunk)]

    def _tool_result(self, result: ServerToolResult) -> list[bytes]:
        frames = self._tool_event({"type": "tool.completed", **completed_payload(result)})
        if result.citations:
            annotations = [chat_annotation(citation) for citation in result.citations]
            frames.append(frame(self._chunks.delta_chunk({"annotations": annotations})))
        if result.images:
            images = [chat_image(image) for image in result.images]
            frames.append(frame(self._chunks.delta_chunk({"images": images})))
        return frames

    def _tool_event(self, event: dict[str, Any]) -> list[bytes]:
        return [frame(self._chunks.tool_event_chunk(event))] if self._tool_events else []

    def finish(self, usage: Usage, cost_usd: float) -> list[bytes]:
        return [frame(self._chunks.usage_chunk(usage, cost_usd)), DONE]

    def error(self, code: ErrorCode, message: str) -> list[bytes]:
        return [frame(error_body(code, message, self._request_id)), DONE]


DONE = b"data: [DONE]\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + compact_json(payload) + b"\n\n"


def stream_renderer(*, request_id: str, model: str, tool_events: bool = False) -> ChatStream:
    return ChatStream(request_id=request_id, model=model, tool_events=tool_events)

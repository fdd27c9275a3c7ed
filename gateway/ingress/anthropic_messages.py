"""Anthropic Messages (`POST /api/v1/messages`): the ingress format module (gateway/ingress/base.py).

The mirror image of the Anthropic *upstream* adapter (gateway/upstreams/anthropic.py), kept separate:
- Request: `system` becomes a leading system message; a `tool_result` block becomes a `tool` message of
  its own, and the blocks around it keep their order (a user turn [tool_result, text] is a tool message
  then a user message). `response_format` has no Anthropic equivalent and is refused. `plugins`
  switches server tools on, as in chat completions (ADR 0013).
- Redacted thinking (`redacted_thinking`) and prompt-cache breakpoints (`cache_control`) are accepted
  (marked schema extensions); fields the schema does not name go to `extra` with the anthropic family.
- Response, stream and errors: gateway/ingress/anthropic_messages_render.py.
"""

import json
from typing import Any, Literal

from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    Block,
    CanonicalRequest,
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningControl,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolChoice,
    ToolResultBlock,
    ToolResultPart,
)
from gateway.ingress.anthropic_messages_render import (
    STOP_REASONS,
    MessageStream,
    content_blocks,
    error_body,
    response_object,
    stop_reason,
    tool_input,
    usage_object,
)
from gateway.ingress.validation import (
    load_validator,
    plugins,
    server_tool_uses,
    token_count,
    validate_or_raise,
    wants_tool_events,
)

__all__ = [
    "FORMAT",
    "PROMPT_FIELD",
    "STOP_REASONS",
    "content_blocks",
    "error_body",
    "parse_request",
    "response_object",
    "stop_reason",
    "stream_renderer",
    "tool_input",
    "usage_object",
]

FORMAT = "anthropic_messages"
PROMPT_FIELD = "messages"
PATH = "/api/v1/messages"
LABEL = "Anthropic Messages"
REQUEST_VALIDATOR = load_validator("anthropic_messages.request.json")
_MAPPED = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "thinking",
        "metadata",
        "plugins",
        "hi_tool_events",
    }
)
_TOOL_CHOICE_MODES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "tool": "tool",
    "none": "none",
}


# --- Request ------------------------------------------------------------------------------
def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, f"{field}: {problem}", param=field)


def parse_request(body: dict[str, Any]) -> CanonicalRequest:
    validate_or_raise(REQUEST_VALIDATOR, body)
    _refuse_unsupported(body)
    messages = _system_messages(body.get("system"))
    for raw in body["messages"]:
        messages.extend(_messages(raw))
    switched_on = plugins(body)
    return CanonicalRequest(
        model=body["model"],
        messages=messages,
        tools=[_tool(t) for t in body.get("tools") or []],
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_parallel_tool_calls(body.get("tool_choice")),
        max_tokens=token_count(body["max_tokens"]),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=list(body.get("stop_sequences") or []),
        reasoning=_reasoning(body.get("thinking")),
        stream=bool(body.get("stream")),
        user=_user(body.get("metadata")),
        extra={key: value for key, value in body.items() if key not in _MAPPED},
        extra_family="anthropic",
        server_tools=server_tool_uses(switched_on, "plugins", "id"),
        tool_events=wants_tool_events(body, switched_on),
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if "response_format" in body:
        raise _invalid(
            "response_format",
            "not supported by the Anthropic Messages format; use /api/v1/chat/completions "
            "or /api/v1/responses for structured outputs",
        )


def _system_messages(raw: str | list[dict[str, Any]] | None) -> list[Message]:
    if not raw:
        return []
    blocks: list[Block]
    if isinstance(raw, str):
        blocks = [TextBlock(raw)]
    else:
        blocks = [TextBlock(b["text"], cache_control=b.get("cache_control")) for b in raw if b["text"]]
    return [Message("system", blocks)] if blocks else []


def _messages(raw: dict[str, Any]) -> list[Message]:
    """One Anthropic turn as canonical messages: each tool_result splits it, the order is kept."""
    role = raw["role"]
    content = raw["content"]
    if isinstance(content, str):
        return [Message(role, [TextBlock(content)] if content else [])]
    out: list[Message] = []
    pending: list[Block] = []
    for block in content:
        if block["type"] == "tool_result":
            if pending:
                out.append(Message(role, pending))
                pending = []
            out.append(Message("tool", [_tool_result(block)]))
        else:
            pending.append(_block(block))
    if pending or not out:
        out.append(Message(role, pending))
    return out


def _source_url(source: dict[str, Any]) -> str:
    if source["type"] == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    return source["url"]


def _block(raw: dict[str, Any]) -> Block:
    kind, cache = raw["type"], raw.get("cache_control")
    if kind == "text":
        return TextBlock(raw["text"], cache_control=cache)
    if kind == "image":
        return ImageBlock(url=_source_url(raw["source"]), cache_control=cache)
    if kind == "document":
        source = raw["source"]
        if source["type"] == "base64":
            return FileBlock(filename=raw.get("title"), file_data=_source_url(source), cache_control=cache)
        return FileBlock(filename=raw.get("title"), file_url=source["url"], cache_control=cache)
    if kind == "thinking":
        return ReasoningBlock(text=raw["thinking"], signature=raw.get("signature") or None)
    if kind == "redacted_thinking":
        return ReasoningBlock(text="", signature=raw["data"], redacted=True)
    # tool_use: the schema admits no other kind
    return ToolCallBlock(
        id=raw["id"], name=raw["name"], arguments=json.dumps(raw["input"]), cache_control=cache
    )


def _tool_result(raw: dict[str, Any]) -> ToolResultBlock:
    content = raw.get("content")
    if isinstance(content, str):
        parts: list[ToolResultPart] = [TextBlock(content)]
    else:
        parts = [_result_part(part) for part in content or []]
    return ToolResultBlock(
        tool_call_id=raw["tool_use_id"],
        content=parts,
        is_error=bool(raw.get("is_error")),
        cache_control=raw.get("cache_control"),
    )


def _result_part(raw: dict[str, Any]) -> TextBlock | ImageBlock:
    """A tool result's content block: the schema admits text and image only."""
    if raw["type"] == "text":
        return TextBlock(raw["text"])
    return ImageBlock(url=_source_url(raw["source"]))


def _tool(raw: dict[str, Any]) -> Tool:
    return Tool(
        name=raw["name"],
        description=raw.get("description"),
        parameters=raw["input_schema"],
        cache_control=raw.get("cache_control"),
    )


def _tool_choice(raw: dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    mode = _TOOL_CHOICE_MODES[raw["type"]]
    if mode == "tool" and not raw.get("name"):
        raise _invalid("tool_choice.name", "required when tool_choice.type is 'tool'")
    return ToolChoice(mode=mode, name=raw.get("name") if mode == "tool" else None)


def _parallel_tool_calls(tool_choice: dict[str, Any] | None) -> bool | None:
    return False if (tool_choice or {}).get("disable_parallel_tool_use") else None


def _reasoning(raw: dict[str, Any] | None) -> ReasoningControl | None:
    if raw is None:
        return None
    if raw["type"] == "disabled":
        return ReasoningControl(enabled=False)
    return ReasoningControl(enabled=True, budget_tokens=token_count(raw.get("budget_tokens")))


def _user(metadata: dict[str, Any] | None) -> str | None:
    user_id = (metadata or {}).get("user_id")
    return str(user_id) if user_id is not None else None


def stream_renderer(*, request_id: str, model: str, tool_events: bool = False) -> MessageStream:
    return MessageStream(request_id=request_id, model=model, tool_events=tool_events)

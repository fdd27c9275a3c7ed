"""The Anthropic Messages dialect's request: the canonical request → the body of `POST {base_url}/messages`
(gateway/upstreams/anthropic.py sends it and reads the answer).

Request mapping notes (where Anthropic has no direct equivalent):
- System messages, wherever they appear, are hoisted into the top-level `system` string ("\\n\\n"-joined),
  or into text blocks when one carries a prompt-cache breakpoint (`cache_control`, kept on every block and
  tool that has one).
- `response_format` json_object / json_schema has no native field: a short instruction (with the schema)
  is appended to `system`.
- Reasoning: an explicit budget is used as is (raised to Anthropic's minimum of 1024); effort maps to
  1024 / 4096 / 16384 tokens, and "minimal" to the smallest budget (1024); off (effort "none") is no
  thinking. The budget must stay below `max_tokens`, so when it does not, `max_tokens` becomes budget + the
  asked `max_tokens` (the answer keeps its room). With thinking on, Anthropic rejects `temperature` /
  `top_p` changes, so those are not sent.
- Assistant reasoning blocks without a signature (e.g. produced by another provider) cannot be replayed to
  Anthropic and are dropped; redacted ones are sent back as `redacted_thinking` with their signature as data.
- `parallel_tool_calls: false` is `disable_parallel_tool_use` on the tool choice. Extra fields: see
  upstreams/extras.py (`top_k` is the one OpenAI-family field this API shares).
"""

import json
from typing import Any

from core.errors import ErrorCode
from gateway.canonical import (
    Block,
    CanonicalRequest,
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolResultBlock,
)
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.extras import extras_for

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS = {"minimal": MIN_THINKING_BUDGET, "low": 1024, "medium": 4096, "high": 16384}


def _invalid(message: str) -> UpstreamError:
    return UpstreamError(ErrorCode.INVALID_REQUEST, message)


def _source(url: str, default_media_type: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";")[0] or default_media_type
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _file(block: FileBlock) -> dict[str, Any]:
    if block.file_data:
        data = block.file_data if block.file_data.startswith("data:") else f"data:,{block.file_data}"
        return {"type": "document", "source": _source(data, "application/pdf")}
    if block.file_url:
        return {"type": "document", "source": _source(block.file_url, "application/pdf")}
    raise _invalid("file_id references are not supported by the anthropic upstream")


def _tool_input(call: ToolCallBlock) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError as exc:
        raise _invalid(f"tool call {call.id} arguments are not valid JSON") from exc
    if not isinstance(value, dict):
        raise _invalid(f"tool call {call.id} arguments must be a JSON object")
    return value


def _block(block: Block) -> dict[str, Any] | None:
    """A canonical block as an Anthropic content block, with its cache breakpoint; None if it cannot go."""
    out = _content_block(block)
    cache = getattr(block, "cache_control", None)
    return {**out, "cache_control": cache} if out is not None and cache else out


def _content_block(block: Block) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text} if block.text else None
    if isinstance(block, ImageBlock):
        return {"type": "image", "source": _source(block.url, "image/png")}
    if isinstance(block, FileBlock):
        return _file(block)
    if isinstance(block, ReasoningBlock):
        if block.redacted and block.signature:
            return {"type": "redacted_thinking", "data": block.signature}
        if block.signature:
            return {"type": "thinking", "thinking": block.text, "signature": block.signature}
        return None
    if isinstance(block, ToolCallBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": _tool_input(block)}
    if isinstance(block, ToolResultBlock):
        return _tool_result(block)
    return None


def _tool_result(block: ToolResultBlock) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_call_id}
    if content := [part for part in (_block(item) for item in block.content) if part is not None]:
        result["content"] = content
    if block.is_error:
        result["is_error"] = True
    return result


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Non-system messages, tool results as user turns, consecutive same-role turns merged."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [part for part in (_block(block) for block in message.content) if part is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _system(request: CanonicalRequest) -> str | list[dict[str, Any]]:
    """The system prompt: one string, or text blocks when one carries a cache breakpoint."""
    blocks = [
        b for m in request.messages if m.role == "system" for b in m.content if isinstance(b, TextBlock)
    ]
    instruction = _format_instruction(request)
    if any(block.cache_control for block in blocks):
        extra = [TextBlock(instruction)] if instruction else []
        return [part for part in (_block(block) for block in [*blocks, *extra]) if part is not None]
    parts = [message.text() for message in request.messages if message.role == "system"]
    return "\n\n".join(part for part in [*parts, instruction] if part)


def _format_instruction(request: CanonicalRequest) -> str:
    """`response_format` has no native field: an instruction (with the schema) for the system prompt."""
    response_format = request.response_format
    if response_format and response_format.type == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if response_format and response_format.type == "json_schema":
        schema = json.dumps(response_format.schema or {}, separators=(",", ":"))
        return f"Respond with a single valid JSON object, and nothing else, matching this schema: {schema}"
    return ""


def _thinking_budget(request: CanonicalRequest) -> int | None:
    control = request.reasoning
    if control is None or control.enabled is False:
        return None
    if control.budget_tokens is not None:
        return max(control.budget_tokens, MIN_THINKING_BUDGET)
    if control.effort is not None:
        return EFFORT_BUDGETS[control.effort]
    return EFFORT_BUDGETS["medium"] if control.enabled else None


def _tool(tool: Tool) -> dict[str, Any]:
    described = {"description": tool.description} if tool.description else {}
    cached = {"cache_control": tool.cache_control} if tool.cache_control else {}
    return {"name": tool.name, **described, "input_schema": tool.parameters, **cached}


def _tool_choice(request: CanonicalRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    one_call = request.parallel_tool_calls is False and bool(request.tools)
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if one_call else None
    out: dict[str, Any]
    if choice.mode == "tool":
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": "any" if choice.mode == "required" else choice.mode}
    if one_call and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


# What POST /messages/count_tokens takes of a Messages request body.
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


def build_body(request: CanonicalRequest, route: RouteInfo) -> dict[str, Any]:
    """The Messages API request body for one route."""
    max_tokens = int(request.max_tokens or route.options.get("max_tokens_default") or DEFAULT_MAX_TOKENS)
    body: dict[str, Any] = {"messages": _messages(request.messages)}
    if system := _system(request):
        body["system"] = system
    budget = _thinking_budget(request)
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if budget >= max_tokens:
            max_tokens += budget
    else:
        samplers = {"temperature": request.temperature, "top_p": request.top_p}
        body.update({name: value for name, value in samplers.items() if value is not None})
    body["max_tokens"] = max_tokens
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if choice := _tool_choice(request):
        body["tool_choice"] = choice
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    # Fields of its own family go untouched (fields=None); of OpenAI's, `top_k` (upstreams/extras.py).
    body.update(extras_for(request, family="anthropic", fields=None, label="Anthropic"))
    body.update(model=route.upstream_model_id, stream=request.stream)
    return body

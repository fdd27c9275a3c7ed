"""OpenAI Responses (`POST /api/v1/responses`): the ingress format module (gateway/ingress/base.py).

- Request: `input` is a string or a list of items. `instructions` becomes a leading system message; a
  `reasoning` item, an assistant `message` and the `function_call` items that follow them are one assistant
  turn (upstreams such as Anthropic need the turns to alternate); each `function_call_output` is a tool
  message. Items of an earlier response sent back as they came (ids, statuses, `encrypted_content`) are
  accepted. Stateless: `previous_response_id`, `conversation`, `prompt` and `background` are refused, and
  `store` is accepted but nothing is stored. Server tools are built-in tools (`{type: "web_search"}`, …):
  the gateway runs them (ADR 0013); one this deployment does not offer is refused naming `tools[i].type`.
  Fields of the Responses API that only shape what is
  stored or returned (`metadata`, `include`, `max_tool_calls`, `stream_options`) are dropped; the others
  the schema does not name go to `extra` (passed to the upstream), as in chat completions.
- Response and stream: gateway/ingress/responses_output.py (output items, the response object) and
  gateway/ingress/responses_stream.py (the SSE events, and what a stream broken by an upstream error ends
  with).
- Errors: the OpenAI envelope with the taxonomy code, shared with chat completions.
"""

from typing import Any

from core.envelopes import openai_error_body as error_body
from core.errors import ApiError, ErrorCode
from gateway.canonical import (
    Block,
    CanonicalRequest,
    FileBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    ResponseFormat,
    TextBlock,
    Tool,
    ToolCallBlock,
    ToolChoice,
    ToolResultBlock,
)
from gateway.ingress.chat_completions import parallel_tool_calls
from gateway.ingress.responses_output import decode_reasoning_state, response_object
from gateway.ingress.responses_stream import ResponsesStream
from gateway.ingress.validation import (
    load_validator,
    openai_role,
    reasoning_control,
    refuse_unrenderable,
    server_tool_uses,
    token_count,
    tool_choice_mode,
    validate_or_raise,
    wants_tool_events,
)

__all__ = ["FORMAT", "error_body", "parse_request", "response_object", "stream_renderer"]

FORMAT = "responses"
PROMPT_FIELD = "input"
PATH = "/api/v1/responses"
LABEL = "OpenAI Responses"
REQUEST_VALIDATOR = load_validator("responses.request.json")
_MAPPED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "text",
        "reasoning",
        "previous_response_id",
        "store",
        "user",
        "hi_tool_events",
        "parallel_tool_calls",
        "safety_identifier",
        # Shape only what is stored or returned: nothing to send upstream (docs/translation.md).
        "metadata",
        "include",
        "max_tool_calls",
        "stream_options",
        "truncation",
        "conversation",  # refused when set (_STATEFUL)
        "prompt",
        "background",
    }
)
# Features of a stateful server; this API keeps no state, so each is refused, naming the field.
_STATEFUL = {
    "previous_response_id": "send the full conversation in `input`",
    "conversation": "send the full conversation in `input`",
    "prompt": "stored prompts are not available; send the instructions and input themselves",
    "background": "background responses are not available; stream instead",
}


# --- Request ------------------------------------------------------------------------------
def parse_request(body: dict[str, Any]) -> CanonicalRequest:
    validate_or_raise(REQUEST_VALIDATOR, body)
    _refuse_unsupported(body)
    refuse_unrenderable(body)
    tools = list(enumerate(body.get("tools") or []))
    built_in = [(position, raw) for position, raw in tools if raw["type"] != "function"]
    return CanonicalRequest(
        model=body["model"],
        messages=_instructions(body.get("instructions")) + _conversation(body["input"]),
        tools=[_tool(raw) for _, raw in tools if raw["type"] == "function"],
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=parallel_tool_calls(body),
        max_tokens=token_count(body.get("max_output_tokens")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        response_format=_response_format((body.get("text") or {}).get("format")),
        reasoning=reasoning_control((body.get("reasoning") or {}).get("effort")),
        stream=bool(body.get("stream")),
        user=_end_user(body),
        extra={key: value for key, value in body.items() if key not in _MAPPED},
        server_tools=server_tool_uses(built_in, "tools", "type"),
        tool_events=wants_tool_events(body, built_in),
    )


def _end_user(body: dict[str, Any]) -> str | None:
    """`user`, else `safety_identifier` (what OpenAI now calls the end user's id)."""
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise ApiError(ErrorCode.INVALID_REQUEST, f"{name}: must be a string", param=name)
    return body.get("user") or body.get("safety_identifier") or None


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, instead in _STATEFUL.items():
        if body.get(name) not in (None, False):
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                f"{name}: this API is stateless and stores no responses; {instead}.",
                param=name,
            )
    if body.get("truncation") not in (None, "disabled"):
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            "truncation: only 'disabled' is supported; the gateway never cuts the input",
            param="truncation",
        )


def _instructions(instructions: str | None) -> list[Message]:
    return [Message("system", [TextBlock(instructions)])] if instructions else []


def _conversation(raw_input: str | list[dict[str, Any]]) -> list[Message]:
    if isinstance(raw_input, str):
        return [Message("user", [TextBlock(raw_input)])]
    if not raw_input:
        raise ApiError(ErrorCode.INVALID_REQUEST, "input: must not be empty", param="input")
    messages: list[Message] = []
    for item in raw_input:
        message = _item(item)
        if message is None:
            continue
        previous = messages[-1] if messages else None
        # A turn's reasoning, text and function calls arrive as separate items: they are one assistant turn.
        if message.role == "assistant" and previous is not None and previous.role == "assistant":
            previous.content.extend(message.content)
        else:
            messages.append(message)
    return messages


def _item(item: dict[str, Any]) -> Message | None:
    """One input item as a canonical message; None for an item that carries nothing (an empty summary)."""
    kind = item.get("type", "message")
    if kind == "function_call":
        call = ToolCallBlock(id=item["call_id"], name=item["name"], arguments=item["arguments"])
        return Message("assistant", [call])
    if kind == "function_call_output":
        result = ToolResultBlock(tool_call_id=item["call_id"], content=[TextBlock(item["output"])])
        return Message("tool", [result])
    if kind == "reasoning":
        summary = "\n\n".join(part["text"] for part in item.get("summary") or [])
        signature, redacted = decode_reasoning_state(item.get("encrypted_content"))
        if not summary and not signature:
            return None
        return Message("assistant", [ReasoningBlock(text=summary, signature=signature, redacted=redacted)])
    role = openai_role(item["role"])
    content = item["content"]
    blocks: list[Block] = (
        [TextBlock(content)] if isinstance(content, str) else [_part(part) for part in content]
    )
    return Message(role, blocks)


def _part(raw: dict[str, Any]) -> Block:
    if raw["type"] in ("input_text", "output_text"):
        return TextBlock(raw["text"])
    if raw["type"] == "input_image":
        return ImageBlock(url=raw["image_url"], detail=raw.get("detail"))
    return FileBlock(
        filename=raw.get("filename"), file_data=raw.get("file_data"), file_url=raw.get("file_url")
    )


def _tool(raw: dict[str, Any]) -> Tool:
    parameters = raw.get("parameters") or {"type": "object", "properties": {}}
    return Tool(
        name=raw["name"], description=raw.get("description"), parameters=parameters, strict=raw.get("strict")
    )


def _tool_choice(raw: str | dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return ToolChoice(mode=tool_choice_mode(raw))
    return ToolChoice(mode="tool", name=raw["name"])


def _response_format(raw: dict[str, Any] | None) -> ResponseFormat | None:
    if raw is None:
        return None
    return ResponseFormat(
        type=raw["type"], name=raw.get("name"), schema=raw.get("schema"), strict=raw.get("strict")
    )


def stream_renderer(*, request_id: str, model: str, tool_events: bool = False) -> ResponsesStream:
    return ResponsesStream(request_id=request_id, model=model, tool_events=tool_events)

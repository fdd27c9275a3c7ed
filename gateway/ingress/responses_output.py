"""OpenAI Responses output: output items and the response object (a non-streamed answer, and the response
every stream event of gateway/ingress/responses_stream.py carries).

Separate from the stream because both need it: the stream announces and finishes the very items, ids and
envelope built here, and the non-streamed answer is built from them alone.

- Output items in order, each id `<prefix>_<request id>_<output index>` (`rs_`, `msg_`, `fc_`), so a streamed
  answer's final `response.completed` names the very items its events announced (the official SDK checks).
  A non-streamed answer is the fold: reasoning (an item per block), then text, then one function_call per
  tool call.
- Reasoning state: an Anthropic thinking signature (or a redacted block's data) rides in the reasoning item's
  `encrypted_content`, prefixed with its kind, so a client that sends the item back (`input +=
  response.output`) has its thinking replayed to Anthropic verbatim (gateway/ingress/responses.py).
- Server tools (gateway/ingress/tool_shapes.py): a `web_search_call` or `image_generation_call` item per
  call; the next message's `output_text` cites what they found (`url_citation`).
- The request's parameters are not echoed back (a format sees only the request id and model when it
  renders): `tools`, `tool_choice` and `parallel_tool_calls`, which the SDK's `Response` type requires,
  carry neutral values ([], "auto", true); the other echo fields are null. `usage.cost` (USD) is a
  HyperInfer extension, as in the other formats.
"""

from typing import Any

from gateway.canonical import Citation, ServerToolCall, Usage
from gateway.fold import Folded, FoldedReasoning, FoldedServerTool, FoldedText
from gateway.ingress.base import provider_metadata
from gateway.ingress.tool_shapes import has_responses_item, responses_annotation, responses_item

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


# --- The response object ------------------------------------------------------------------
def usage_object(usage: Usage, cost_usd: float) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            "cache_write_tokens": usage.cache_write_prompt_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cost": cost_usd,
        **provider_metadata(usage),
    }


def item_id(prefix: str, request_id: str, output_index: int) -> str:
    return f"{prefix}_{request_id}_{output_index}"


_THINKING_STATE, _REDACTED_STATE = "anthropic.thinking:", "anthropic.redacted:"


def encode_reasoning_state(signature: str | None, redacted: bool = False) -> str | None:
    if not signature:
        return None
    return (_REDACTED_STATE if redacted else _THINKING_STATE) + signature


def decode_reasoning_state(value: str | None) -> tuple[str | None, bool]:
    """(signature, redacted) from an `encrypted_content` we issued; (None, False) for anything else."""
    for prefix, redacted in ((_THINKING_STATE, False), (_REDACTED_STATE, True)):
        if value and value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :], redacted
    return None, False


def reasoning_item(id_: str, text: str, encrypted_content: str | None = None) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    item: dict[str, Any] = {"id": id_, "type": "reasoning", "summary": summary}
    if encrypted_content:
        item["encrypted_content"] = encrypted_content
    return item


def message_item(
    id_: str, text: str | None, status: str = "completed", cited: tuple[Citation, ...] = ()
) -> dict[str, Any]:
    content = [] if text is None else [output_text_part(text, cited)]
    return {"id": id_, "type": "message", "role": "assistant", "status": status, "content": content}


def function_call_item(
    id_: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def output_text_part(text: str, cited: tuple[Citation, ...] = ()) -> dict[str, Any]:
    annotations = [responses_annotation(citation, len(text)) for citation in cited]
    return {"type": "output_text", "text": text, "annotations": annotations}


def response_envelope(
    *,
    request_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = _INCOMPLETE_REASONS.get(finish_reason or "")
    return {
        "id": f"resp_{request_id}",
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        "usage": usage,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": None,
        "top_p": None,
        "text": None,
        "store": False,
    }


def tool_item_prefix(tool: str) -> str:
    return "ig" if tool == "image" else "ws"


def final_status(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason in _INCOMPLETE_REASONS else "completed"


def response_object(
    *, request_id: str, model: str, created: int, folded: Folded, usage: Usage, cost_usd: float
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []  # one item a block, in the stream's order (empty ones left out)
    cited: tuple[Citation, ...] = ()  # what the server tools found, for the next message to cite
    for block in folded.blocks:
        if isinstance(block, FoldedText):
            if block.text:
                output.append(message_item(item_id("msg", request_id, len(output)), block.text, cited=cited))
                cited = ()
        elif isinstance(block, FoldedServerTool):
            cited += block.result.citations if block.result else ()
            if has_responses_item(block.name):
                call = ServerToolCall(0, block.id, block.name, block.arguments)
                output.append(
                    responses_item(
                        item_id(tool_item_prefix(block.name), request_id, len(output)), call, block.result
                    )
                )
        elif isinstance(block, FoldedReasoning):
            state = encode_reasoning_state(block.signature, block.redacted)
            if block.text or state:
                output.append(reasoning_item(item_id("rs", request_id, len(output)), block.text, state))
        else:
            fc_id = item_id("fc", request_id, len(output))
            output.append(function_call_item(fc_id, block.id, block.name, block.arguments))
    return response_envelope(
        request_id=request_id,
        model=model,
        created_at=created,
        status=final_status(folded.finish_reason),
        output=output,
        usage=usage_object(usage, cost_usd),
        finish_reason=folded.finish_reason,
    )

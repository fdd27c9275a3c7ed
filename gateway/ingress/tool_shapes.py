"""Server tool calls in each format's own shapes (ADR 0013, docs/server-tools.md): what the renderers of the
three formats put in a response or stream for a `ServerToolCall` / `ServerToolResult`, in one place.

- Chat Completions (OpenRouter's shapes): `annotations` of `url_citation`, generated `images`.
- Responses (OpenAI's built-in tool items): `web_search_call` (web_search: action `search`; web_fetch: action
  `open_page`), `image_generation_call`; `url_citation` annotations on the `output_text` that follows.
  datetime has no OpenAI item: it shows in tool events only.
- Messages (Anthropic's server tools): a `server_tool_use` block, then `web_search_tool_result` /
  `web_fetch_tool_result`, or the HyperInfer extension `hi_tool_result` for datetime and image; the next text
  block cites web_search's results (`web_search_result_location`).
- Tool events (asked for with `hi_tool_events`): one payload per call start and per result, the same fields in
  every format, each format sending it its own way.
"""

import json
from typing import Any

from gateway.canonical import Citation, ServerToolCall, ServerToolResult

SEARCH_ITEM_TOOLS = ("web_search", "web_fetch")  # shown as Responses' web_search_call


def arguments_object(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def status(result: ServerToolResult | None) -> str:
    if result is None:
        return "in_progress"
    return "failed" if result.error else "completed"


# --- Tool events ------------------------------------------------------------------------------------
def started_payload(call: ServerToolCall) -> dict[str, Any]:
    return {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}


def completed_payload(result: ServerToolResult) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "call_id": result.call_id,
        "name": result.name,
        "status": status(result),
        "output": result.output,
        "citations": [{"url": c.url, "title": c.title} for c in result.citations],
    }
    if result.error:
        payload["error"] = result.error
    return payload


# --- Chat Completions -------------------------------------------------------------------------------
def chat_annotation(citation: Citation) -> dict[str, Any]:
    return {
        "type": "url_citation",
        "url_citation": {
            "url": citation.url,
            "title": citation.title,
            "content": citation.snippet,
            "start_index": 0,
            "end_index": 0,
        },
    }


def chat_image(image: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image}}


# --- Responses --------------------------------------------------------------------------------------
def has_responses_item(name: str) -> bool:
    return name in SEARCH_ITEM_TOOLS or name == "image"


def responses_item(id_: str, call: ServerToolCall, result: ServerToolResult | None) -> dict[str, Any]:
    """The built-in tool item of a call (in progress until its result)."""
    arguments = arguments_object(call.arguments)
    if call.name == "image":
        image = result.images[0].partition(",")[2] if result and result.images else None
        return {"id": id_, "type": "image_generation_call", "status": status(result), "result": image}
    if call.name == "web_fetch":
        action: dict[str, Any] = {"type": "open_page", "url": str(arguments.get("url", ""))}
    else:
        action = {"type": "search", "query": str(arguments.get("query", ""))}
        if result is not None:
            action["sources"] = [{"type": "url", "url": c.url} for c in result.citations]
    return {"id": id_, "type": "web_search_call", "status": status(result), "action": action}


def responses_annotation(citation: Citation, text_length: int) -> dict[str, Any]:
    return {
        "type": "url_citation",
        "url": citation.url,
        "title": citation.title,
        "start_index": 0,
        "end_index": text_length,
    }


def responses_progress(name: str) -> tuple[str, ...]:
    """OpenAI's own progress events of a built-in tool item: (started ones…, completed)."""
    if name == "image":
        return ("response.image_generation_call.in_progress", "response.image_generation_call.generating")
    if name in SEARCH_ITEM_TOOLS:
        return ("response.web_search_call.in_progress", "response.web_search_call.searching")
    return ()


def responses_progress_done(name: str) -> str | None:
    if name == "image":
        return "response.image_generation_call.completed"
    return "response.web_search_call.completed" if name in SEARCH_ITEM_TOOLS else None


# --- Messages ---------------------------------------------------------------------------------------
def server_tool_use_block(call: ServerToolCall) -> dict[str, Any]:
    return {
        "type": "server_tool_use",
        "id": messages_tool_id(call.call_id),
        "name": call.name,
        "input": arguments_object(call.arguments),
    }


def messages_tool_id(call_id: str) -> str:
    return call_id if call_id.startswith("srvtoolu_") else f"srvtoolu_{call_id}"


def messages_result_block(result: ServerToolResult) -> dict[str, Any]:
    tool_use_id = messages_tool_id(result.call_id)
    if result.name == "web_search":
        content: Any = [
            {
                "type": "web_search_result",
                "url": c.url,
                "title": c.title,
                "encrypted_content": "",
                "page_age": None,
            }
            for c in result.citations
        ]
        if result.error:
            content = {"type": "web_search_tool_result_error", "error_code": "unavailable"}
        return {"type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": content}
    if result.name == "web_fetch":
        if result.error:
            content = {"type": "web_fetch_tool_error", "error_code": "unavailable"}
        else:
            page = result.citations[0] if result.citations else Citation("", "")
            document = {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": result.output},
                "title": page.title,
            }
            content = {"type": "web_fetch_result", "url": page.url, "content": document, "retrieved_at": None}
        return {"type": "web_fetch_tool_result", "tool_use_id": tool_use_id, "content": content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": result.output}]
    for image in result.images:
        header, _, data = image.partition(",")
        media_type = header.removeprefix("data:").split(";")[0] or "image/png"
        parts.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    return {
        "type": "hi_tool_result",
        "tool_use_id": tool_use_id,
        "name": result.name,
        "is_error": bool(result.error),
        "content": parts,
    }


def messages_citation(citation: Citation) -> dict[str, Any]:
    return {
        "type": "web_search_result_location",
        "url": citation.url,
        "title": citation.title,
        "encrypted_index": "",
        "cited_text": citation.snippet,
    }


def cited_by_text(result: ServerToolResult) -> tuple[Citation, ...]:
    """What the text after a result cites in Messages: web_search's results (Anthropic cites a fetched page
    by character positions in its document, which the gateway does not know)."""
    return result.citations if result.name == "web_search" and not result.error else ()

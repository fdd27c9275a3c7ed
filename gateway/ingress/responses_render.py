"""OpenAI Responses output: canonical events → output items, the response object and the SSE events.

- Output items in order, each id `<prefix>_<request id>_<output index>` (`rs_`, `msg_`, `fc_`), so a streamed
  answer's final `response.completed` names the very items its events announced (the official SDK checks).
  A non-streamed answer is the fold: reasoning (an item per block), then text, then one function_call per
  tool call.
- Reasoning state: an Anthropic thinking signature (or a redacted block's data) rides in the reasoning item's
  `encrypted_content`, prefixed with its kind, so a client that sends the item back (`input +=
  response.output`) has its thinking replayed to Anthropic verbatim (gateway/ingress/responses.py).
- Stream: `event:` + `data:` frames, each with `type` and an increasing `sequence_number`. One output item is
  open at a time and is closed (its `*.done` events) when the next block starts. A reasoning or message item
  opens with its first non-empty delta or signature, so an empty block yields no item (as in the fold); a
  reasoning item's summary part opens with its first text, so a redacted block has an empty summary.
  The end is `response.completed`, or `response.incomplete` when the answer was cut (length, content filter).
  No `[DONE]` line: the Responses protocol has none.
- Server tools (gateway/ingress/tool_shapes.py): a `web_search_call` or `image_generation_call` item per
  call (added when it starts, done when it finishes); the next message's `output_text` cites what they found
  (`url_citation`, each announced by `response.output_text.annotation.added` before the text is done). With
  tool events on, OpenAI's progress events of those items and `response.hi_tool.started` / `.completed` for
  every call, datetime's included.
- Errors after the first byte: an `error` event (`code`, `message`, `param`), then `response.failed` whose
  response has status `failed` and `error: {code, message}`; an item cut off mid-way gets status
  `incomplete` and no `*.done` events. The official SDK parses both as typed events.
- The request's parameters are not echoed back (a format sees only the request id and model when it
  renders): `tools`, `tool_choice` and `parallel_tool_calls`, which the SDK's `Response` type requires,
  carry neutral values ([], "auto", true); the other echo fields are null. `usage.cost` (USD) is a
  HyperInfer extension, as in the other formats.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.encoding import compact_json
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
    completed_payload,
    has_responses_item,
    responses_annotation,
    responses_item,
    responses_progress,
    responses_progress_done,
    started_payload,
)

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
    content = [] if text is None else [_output_text(text, cited)]
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


def _output_text(text: str, cited: tuple[Citation, ...] = ()) -> dict[str, Any]:
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


def _prefix(tool: str) -> str:
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
                    responses_item(item_id(_prefix(block.name), request_id, len(output)), call, block.result)
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


# --- Stream -------------------------------------------------------------------------------
@dataclass(slots=True)
class OpenItem:
    """The output item being streamed: its final form so far, and the text or arguments it gathered."""

    output_index: int
    item: dict[str, Any]
    text: str = ""
    ids: dict[str, Any] = field(default_factory=dict)  # item_id + output_index, as every event names them
    part_open: bool = False  # a reasoning item's summary part (a message's text part opens with the item)


class ResponsesStream:
    """Renders canonical events as the Responses semantic events of one streamed response."""

    def __init__(self, *, request_id: str, model: str, tool_events: bool = False) -> None:
        self._request_id, self._model = request_id, model
        self._tool_events = tool_events
        self._tool_items: dict[str, dict[str, Any]] = {}  # a server tool call's item and ids, by call id
        self._cited: tuple[Citation, ...] = ()  # what the server tools found, for the next message to cite
        self._created_at = int(time.time())
        self._sequence = 0
        self._output: list[dict[str, Any]] = []  # every item started, in output order, as it stands
        self._open: OpenItem | None = None
        self._finish_reason: str | None = None

    # The protocol --------------------------------------------------------------------------
    def start(self) -> list[bytes]:
        return [
            self._event("response.created", response=self._response("in_progress")),
            self._event("response.in_progress", response=self._response("in_progress")),
        ]

    def render(self, event: Event) -> list[bytes]:
        match event:
            case BlockStart(kind="tool_call", tool_call_id=call_id, tool_name=name):
                return [*self._close(), *self._open_function_call(call_id or "", name or "")]
            case BlockStart() | BlockStop():
                return self._close()
            case TextDelta(text=text) if text:
                return [*self._ensure_open("message"), self._text_delta(text)]
            case ReasoningDelta(text=text, signature=signature, redacted=redacted) if text or signature:
                frames = self._ensure_open("reasoning")
                if text:
                    frames += self._reasoning_delta(text)
                if (state := encode_reasoning_state(signature, redacted)) and self._open is not None:
                    self._open.item["encrypted_content"] = state
                return frames
            case ToolCallDelta(arguments=arguments) if arguments and self._open_is("function_call"):
                return [self._arguments_delta(arguments)]
            case ServerToolCall():
                return [*self._close(), *self._tool_started(event)]
            case ServerToolResult():
                return self._tool_completed(event)
            case Finish(reason=reason):
                self._finish_reason = reason
        return []

    # Server tools ----------------------------------------------------------------------------
    def _tool_started(self, call: ServerToolCall) -> list[bytes]:
        frames = self._tool_event("response.hi_tool.started", **started_payload(call))
        if not has_responses_item(call.name):
            return frames
        output_index = len(self._output)
        item = responses_item(item_id(_prefix(call.name), self._request_id, output_index), call, None)
        self._output.append(item)
        ids = {"item_id": item["id"], "output_index": output_index}
        self._tool_items[call.call_id] = {"call": call, "ids": ids}
        frames.append(self._event("response.output_item.added", output_index=output_index, item=item))
        for kind in responses_progress(call.name) if self._tool_events else ():
            frames.append(self._event(kind, **ids))
        return frames

    def _tool_completed(self, result: ServerToolResult) -> list[bytes]:
        self._cited += result.citations
        frames = []
        if (started := self._tool_items.pop(result.call_id, None)) is not None:
            ids = started["ids"]
            item = responses_item(ids["item_id"], started["call"], result)
            self._output[ids["output_index"]] = item
            if self._tool_events and (done := responses_progress_done(result.name)):
                frames.append(self._event(done, **ids))
            frames.append(
                self._event("response.output_item.done", output_index=ids["output_index"], item=item)
            )
        return [*frames, *self._tool_event("response.hi_tool.completed", **completed_payload(result))]

    def _tool_event(self, kind: str, **data: Any) -> list[bytes]:
        return [self._event(kind, **data)] if self._tool_events else []

    def finish(self, usage: Usage, cost_usd: float) -> list[bytes]:
        status = final_status(self._finish_reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        response = self._response(status, usage=usage_object(usage, cost_usd))
        return [*self._close(), self._event(kind, response=response)]

    def error(self, code: ErrorCode, message: str) -> list[bytes]:
        if self._open is not None:
            self._open.item["status"] = "incomplete"  # cut off: no *.done events for it
            self._open = None
        failed = self._response("failed", error={"code": code.value, "message": message})
        return [
            self._event("error", code=code.value, message=message, param=None),
            self._event("response.failed", response=failed),
        ]

    # Items ---------------------------------------------------------------------------------
    def _open_is(self, kind: str) -> bool:
        return self._open is not None and self._open.item["type"] == kind

    def _begin(self, prefix: str, make_item: Callable[[str], dict[str, Any]]) -> OpenItem:
        output_index = len(self._output)
        item = make_item(item_id(prefix, self._request_id, output_index))
        self._output.append(item)
        self._open = OpenItem(output_index, item, ids={"item_id": item["id"], "output_index": output_index})
        return self._open

    def _ensure_open(self, kind: str) -> list[bytes]:
        if self._open_is(kind):
            return []
        frames = self._close()
        if kind == "message":
            opened = self._begin("msg", lambda id_: message_item(id_, None, status="in_progress"))
            part = {"content_index": 0, "part": _output_text("")}
            return [
                *frames,
                self._added(opened),
                self._event("response.content_part.added", **opened.ids, **part),
            ]
        opened = self._begin("rs", lambda id_: reasoning_item(id_, ""))
        return [*frames, self._added(opened)]

    def _open_function_call(self, call_id: str, name: str) -> list[bytes]:
        opened = self._begin(
            "fc", lambda id_: function_call_item(id_, call_id, name, "", status="in_progress")
        )
        return [self._added(opened)]

    def _added(self, opened: OpenItem) -> bytes:
        return self._event("response.output_item.added", output_index=opened.output_index, item=opened.item)

    def _text_delta(self, text: str) -> bytes:
        assert self._open is not None
        self._open.text += text
        return self._event(
            "response.output_text.delta", **self._open.ids, content_index=0, delta=text, logprobs=[]
        )

    def _reasoning_delta(self, text: str) -> list[bytes]:
        opened = self._open
        assert opened is not None
        frames = []
        if not opened.part_open:
            opened.part_open = True
            part = {"summary_index": 0, "part": {"type": "summary_text", "text": ""}}
            frames.append(self._event("response.reasoning_summary_part.added", **opened.ids, **part))
        opened.text += text
        kind = "response.reasoning_summary_text.delta"
        return [*frames, self._event(kind, **opened.ids, summary_index=0, delta=text)]

    def _arguments_delta(self, arguments: str) -> bytes:
        assert self._open is not None
        self._open.text += arguments
        return self._event("response.function_call_arguments.delta", **self._open.ids, delta=arguments)

    def _close(self) -> list[bytes]:
        """The `*.done` events of the open item, which takes its final form in the output."""
        opened, self._open = self._open, None
        if opened is None:
            return []
        item, ids, text = opened.item, opened.ids, opened.text
        if item["type"] == "message":
            part = _output_text(text, self._cited)
            self._cited = ()
            item.update(status="completed", content=[part])
            frames = [
                self._event("response.output_text.annotation.added", **ids, content_index=0, **added)
                for added in (
                    {"annotation_index": i, "annotation": a} for i, a in enumerate(part["annotations"])
                )
            ]
            frames += [
                self._event("response.output_text.done", **ids, content_index=0, text=text, logprobs=[]),
                self._event("response.content_part.done", **ids, content_index=0, part=part),
            ]
        elif item["type"] == "reasoning":
            frames = []
            if opened.part_open:
                part = {"type": "summary_text", "text": text}
                item["summary"] = [part]
                frames = [
                    self._event("response.reasoning_summary_text.done", **ids, summary_index=0, text=text),
                    self._event("response.reasoning_summary_part.done", **ids, summary_index=0, part=part),
                ]
        else:
            item.update(status="completed", arguments=text)
            frames = [
                self._event("response.function_call_arguments.done", **ids, name=item["name"], arguments=text)
            ]
        done = self._event("response.output_item.done", output_index=opened.output_index, item=item)
        return [*frames, done]

    # Frames --------------------------------------------------------------------------------
    def _response(self, status: str, **more: Any) -> dict[str, Any]:
        return response_envelope(
            request_id=self._request_id,
            model=self._model,
            created_at=self._created_at,
            status=status,
            output=self._output,
            finish_reason=self._finish_reason if status == "incomplete" else None,
            **more,
        )

    def _event(self, kind: str, **data: Any) -> bytes:
        """One SSE frame, serialized at once (items change afterwards; the frame must not)."""
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + compact_json(payload) + b"\n\n"

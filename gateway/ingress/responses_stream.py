"""OpenAI Responses stream: canonical events → the SSE events of one streamed response.

Separate from gateway/ingress/responses_output.py (the items and the response object, which every event
here carries) because the stream is a protocol of its own: which item is open, the order of its events, and
their sequence numbers.

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
from gateway.fold import joined
from gateway.ingress.responses_output import (
    encode_reasoning_state,
    final_status,
    function_call_item,
    item_id,
    message_item,
    output_text_part,
    reasoning_item,
    response_envelope,
    tool_item_prefix,
    usage_object,
)
from gateway.ingress.tool_shapes import (
    completed_payload,
    has_responses_item,
    responses_item,
    responses_progress,
    responses_progress_done,
    started_payload,
)


# --- Stream -------------------------------------------------------------------------------
@dataclass(slots=True)
class OpenItem:
    """The output item being streamed: its final form so far, and the text or arguments it gathered."""

    output_index: int
    item: dict[str, Any]
    ids: dict[str, Any] = field(default_factory=dict)  # item_id + output_index, as every event names them
    part_open: bool = False  # a reasoning item's summary part (a message's text part opens with the item)
    _pieces: list[str] = field(default_factory=list)  # the text or arguments, a delta each (fold.joined)

    @property
    def text(self) -> str:
        return joined(self._pieces)

    def add(self, text: str) -> None:
        self._pieces.append(text)


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
        item = responses_item(
            item_id(tool_item_prefix(call.name), self._request_id, output_index), call, None
        )
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
            part = {"content_index": 0, "part": output_text_part("")}
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
        self._open.add(text)
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
        opened.add(text)
        kind = "response.reasoning_summary_text.delta"
        return [*frames, self._event(kind, **opened.ids, summary_index=0, delta=text)]

    def _arguments_delta(self, arguments: str) -> bytes:
        assert self._open is not None
        self._open.add(arguments)
        return self._event("response.function_call_arguments.delta", **self._open.ids, delta=arguments)

    def _close(self) -> list[bytes]:
        """The `*.done` events of the open item, which takes its final form in the output."""
        opened, self._open = self._open, None
        if opened is None:
            return []
        item, ids, text = opened.item, opened.ids, opened.text
        if item["type"] == "message":
            part = output_text_part(text, self._cited)
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

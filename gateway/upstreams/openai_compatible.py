"""The OpenAI Chat Completions dialect: the base adapter for cerebras, fireworks, baseten and llamacpp.

Request: canonical → `POST {base_url}/chat/completions`; a legacy text completion (`raw_prompt`) →
`POST {base_url}/completions` with the prompt as it is (`text` in its chunks). A streamed request is streamed
with usage asked for; a non-streamed one asks for the whole answer (`stream: false`, ADR 0019): one JSON
object costs the upstream, the wire and this process less than a stream of chunks, and its `message` reads
as the one delta of such a stream, so both give the same events.
Response: `chat.completion.chunk` frames → canonical events. A block opens when its first delta arrives and
closes when a different block begins or the finish arrives, so indices follow arrival order (reasoning 0,
text 1, tool calls 2, 3, ...) and every block is stopped before `Finish`. `Usage` comes last, once the
stream has ended, because dialects send it after (or with) the finish frame.

Route options: `max_tokens_field` (the field that carries the token limit) and `first_byte_timeout_seconds`
(default: the provider's timeout), the deadline for a stream's response headers and first event together (a
whole answer has no first byte before its last: the provider's timeout bounds it).

A dialect declares the top-level request fields of its spec (`chat_fields`, `completion_fields`): the
request's provider-only fields go to it only if it has them (upstreams/extras.py). What a dialect reports
beside the answer (timings, metrics: `handle_chunk_extras`) rides on the `Usage` as its provider metadata.
"""

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import aiohttp

from core.encoding import compact_json, read_json
from core.errors import ErrorCode
from gateway.canonical import (
    Block,
    BlockKind,
    BlockStart,
    BlockStop,
    CanonicalRequest,
    Event,
    FileBlock,
    Finish,
    FinishReason,
    ImageBlock,
    Message,
    ReasoningBlock,
    ReasoningDelta,
    ResponseFormat,
    TextBlock,
    TextDelta,
    ToolCallBlock,
    ToolCallDelta,
    ToolResultBlock,
    Usage,
)
from gateway.tokens import estimate_prompt_tokens
from gateway.upstreams.base import Embedded, RouteInfo, UpstreamAdapter, UpstreamError
from gateway.upstreams.extras import extras_for
from gateway.upstreams.openai_embeddings import openai_embeddings
from gateway.upstreams.openai_errors import Json, classify_error, error_object, error_words, http_failure
from gateway.upstreams.registry import register
from gateway.upstreams.sse import SseEvent, iter_sse

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# The adapter owns these: `extra` may not turn streaming off or change the conversation.
_PROTECTED = frozenset({"model", "messages", "stream", "stream_options"})
_PROTECTED_COMPLETION = frozenset({"model", "prompt", "stream", "stream_options"})


def effort_for_budget(budget: int) -> str:
    """The nearest effort for a token budget, for dialects that only take an effort."""
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def parse_usage(raw: Json) -> Usage:
    prompt = raw.get("prompt_tokens") or 0
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=raw.get("completion_tokens") or 0,
        cached_prompt_tokens=min(cached, prompt),
        reasoning_tokens=(raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0,
    )


def _transport_failure(slug: str, exc: TimeoutError | aiohttp.ClientError) -> UpstreamError:
    """A request that timed out, or whose connection failed (streamed or not)."""
    if isinstance(exc, TimeoutError):
        return UpstreamError.provider_side(ErrorCode.PROVIDER_TIMEOUT, f"{slug}: timed out")
    detail = f"{slug}: {type(exc).__name__}: {exc!r}"
    return UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail)


def _excerpt(answer: Json) -> str:
    return json.dumps(answer)[:200]


def _reached_the_limit(request: CanonicalRequest, state: "StreamState") -> bool:
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
    # Chunks that carried output, empty ones included, the role frame not (a server streaming token by token
    # sends one per token, with empty text while a multi-byte character is incomplete).
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


@register
class OpenAICompatibleAdapter(UpstreamAdapter):
    kind = "openai_compatible"
    label = "OpenAI-compatible"
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    reasoning_fields: ClassVar[tuple[str, ...]] = ("reasoning_content", "reasoning")
    history_reasoning_field: ClassVar[str | None] = None  # where assistant reasoning goes in a request
    message_names: ClassVar[bool] = True
    # The top-level request fields of the dialect's spec, chat and text completions (upstreams/extras.py);
    # None: any field of the family goes (a generic server decides for itself).
    chat_fields: ClassVar[frozenset[str] | None] = None
    completion_fields: ClassVar[frozenset[str] | None] = None
    # The `reasoning_effort` values the dialect takes, lowest first ("minimal" asks for the first).
    efforts: ClassVar[tuple[str, ...]] = ("minimal", "low", "medium", "high")
    completes_text = True
    serves_embeddings = True  # POST /embeddings (gateway/upstreams/openai_embeddings.py)
    # Whether a non-streamed request asks the upstream for the whole answer (else it is streamed and folded).
    answers_whole: ClassVar[bool] = True
    shortens_embeddings = True  # OpenAI's `dimensions`

    # --- Request ---------------------------------------------------------------------------
    def chat_url(self, route: RouteInfo) -> str:
        return f"{route.provider.base_url.rstrip('/')}/chat/completions"

    def url_for(self, request: CanonicalRequest, route: RouteInfo) -> str:
        """Where this request goes: chat completions, or text completions for a raw prompt."""
        if request.raw_prompt is None:
            return self.chat_url(route)
        return f"{route.provider.base_url.rstrip('/')}/completions"

    def auth_headers(self, route: RouteInfo) -> dict[str, str]:
        key = route.provider.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def streams(self, request: CanonicalRequest) -> bool:
        """Whether this request is sent as a stream: when the client streams, or the dialect answers no other
        way."""
        return request.stream or not self.answers_whole

    def stream_options(self) -> Json | None:
        return {"include_usage": True}

    def build_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        if request.raw_prompt is not None:
            return self.text_completion_body(request, route)
        body: Json = {"model": route.upstream_model_id, "messages": self.messages(request.messages)}
        if request.tools:
            body["tools"] = [
                self.tool(tool.name, tool.description, tool.parameters, tool.strict) for tool in request.tools
            ]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.mode == "tool"
                else choice.mode
            )
        if request.parallel_tool_calls is not None and request.tools:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.max_tokens is not None:
            body[route.options.get("max_tokens_field", self.max_tokens_field)] = request.max_tokens
        optional = {"temperature": request.temperature, "top_p": request.top_p, "user": request.user}
        body.update({name: value for name, value in optional.items() if value is not None})
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format is not None:
            body["response_format"] = self.response_format(request.response_format)
        self.map_reasoning(request, body)
        extra = extras_for(request, family="openai", fields=self.chat_fields, label=self.label)
        body.update({name: value for name, value in extra.items() if name not in _PROTECTED})
        return self.with_stream_flags(request, body)

    def text_completion_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        """A legacy completion: the prompt as it is; `max_tokens` in every dialect's completions schema."""
        body: Json = {"model": route.upstream_model_id, "prompt": request.raw_prompt}
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "user": request.user,
            "stop": list(request.stop) or None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        extra = extras_for(request, family="openai", fields=self.completion_fields, label=self.label)
        body.update({name: value for name, value in extra.items() if name not in _PROTECTED_COMPLETION})
        return self.with_stream_flags(request, body)

    def with_stream_flags(self, request: CanonicalRequest, body: Json) -> Json:
        body["stream"] = self.streams(request)
        if body["stream"] and (options := self.stream_options()) is not None:
            body["stream_options"] = options
        return body

    @staticmethod
    def tool(name: str, description: str | None, parameters: Json, strict: bool | None = None) -> Json:
        function: Json = {"name": name, "parameters": parameters}
        if description:
            function["description"] = description
        if strict is not None:
            function["strict"] = strict
        return {"type": "function", "function": function}

    def response_format(self, fmt: ResponseFormat) -> Json:
        if fmt.type != "json_schema":
            return {"type": fmt.type}
        schema: Json = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        """OpenAI's own values: "none" for off, the effort as asked (a server without them says so)."""
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["reasoning_effort"] = "none"
        elif control.effort:
            body["reasoning_effort"] = self.effort(control.effort)
        elif control.budget_tokens:
            body["reasoning_effort"] = effort_for_budget(control.budget_tokens)

    def effort(self, asked: str) -> str:
        """The dialect's effort for the one asked: "minimal" is its lowest."""
        return asked if asked in self.efforts else self.efforts[0]

    def messages(self, messages: list[Message]) -> list[Json]:
        out: list[Json] = []
        for message in messages:
            results = [block for block in message.content if isinstance(block, ToolResultBlock)]
            out.extend(self.tool_result_messages(results))
            rest = [block for block in message.content if not isinstance(block, ToolResultBlock)]
            if rest or not results:
                out.append(self.message(message.role, rest, message.name))
        return out

    def message(self, role: str, blocks: Sequence[Block], name: str | None) -> Json:
        if role == "tool":  # a tool message without a result block: keep its text
            role = "user"
        out: Json = {"role": role}
        if role == "assistant":
            self.assistant_fields(blocks, out)
        else:
            out["content"] = self.content(role, blocks)
        if name and self.message_names:
            out["name"] = name
        return out

    def assistant_fields(self, blocks: Sequence[Block], out: Json) -> None:
        text = [block for block in blocks if isinstance(block, TextBlock)]
        calls = [block for block in blocks if isinstance(block, ToolCallBlock)]
        if text or not calls:  # a tool-calling turn without text has no content (some schemas forbid null)
            out["content"] = self.content("assistant", text)
        reasoning = "".join(b.text for b in blocks if isinstance(b, ReasoningBlock) and not b.redacted)
        if reasoning and self.history_reasoning_field:
            out[self.history_reasoning_field] = reasoning
        if calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ]

    def content(self, role: str, blocks: Sequence[Block]) -> str | list[Json]:
        parts = [part for block in blocks if (part := self.part(block)) is not None]
        if not parts:
            return ""
        if len(parts) == 1 and parts[0]["type"] == "text":
            return parts[0]["text"]
        return parts

    @staticmethod
    def part(block: Block) -> Json | None:
        if isinstance(block, TextBlock):
            return {"type": "text", "text": block.text}
        if isinstance(block, ImageBlock):
            image: Json = {"url": block.url} | ({"detail": block.detail} if block.detail else {})
            return {"type": "image_url", "image_url": image}
        if isinstance(block, FileBlock):
            if block.file_url and not (block.file_data or block.file_id):
                raise UpstreamError(
                    ErrorCode.INVALID_REQUEST,
                    "file_url: this model's provider takes files inline only; send the file as file_data",
                    param="file_url",
                )
            fields = {"filename": block.filename, "file_data": block.file_data, "file_id": block.file_id}
            return {"type": "file", "file": {k: v for k, v in fields.items() if v is not None}}
        return None  # reasoning outside an assistant turn has no place in this dialect

    def tool_result_messages(self, results: list[ToolResultBlock]) -> list[Json]:
        out: list[Json] = []
        images: list[ImageBlock] = []
        for result in results:
            text = "".join(part.text for part in result.content if isinstance(part, TextBlock))
            out.append({"role": "tool", "tool_call_id": result.tool_call_id, "content": text})
            images += [part for part in result.content if isinstance(part, ImageBlock)]
        if images:  # tool messages carry text only; images follow in a user turn
            out.append({"role": "user", "content": self.content("user", images)})
        return out

    # --- Response --------------------------------------------------------------------------
    def reasoning_text(self, delta: Json) -> str:
        for name in self.reasoning_fields:
            if isinstance(value := delta.get(name), str) and value:
                return value
        return ""

    def handle_chunk_extras(self, chunk: Json, state: StreamState) -> None:
        """Dialect-only chunk fields (timings, metrics): a dialect keeps them in `state.provider_metadata`."""

    def stream_error(self, chunk: Json) -> UpstreamError:
        """An error chunk inside the stream (Cerebras' ErrorChunkResponse: `status_code` beside `error`)."""
        error = error_object(chunk)
        status = chunk.get("status_code") or error.get("status_code") or error.get("code")
        status = status if isinstance(status, int) else 500
        return UpstreamError.from_upstream(
            classify_error(status, error),
            error_words(error),
            detail=f"upstream error in stream: {json.dumps(chunk)[:2000]}",
            status=status,
        )

    def events_for(self, sse: SseEvent, state: StreamState) -> list[Event]:
        try:
            chunk = read_json(sse.data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise UpstreamError.provider_side(
                ErrorCode.PROVIDER_UNAVAILABLE, f"malformed upstream chunk: {sse.data[:200]}"
            )
        if sse.event == "error" or chunk.get("error"):
            raise self.stream_error(chunk)
        self.handle_chunk_extras(chunk, state)
        if isinstance(chunk.get("usage"), dict):
            state.usage = parse_usage(chunk["usage"])
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                events += self.choice_events(choice, state)
        return events

    def choice_events(self, choice: Json, state: StreamState) -> list[Event]:
        if state.finish is not None:
            return []
        delta = choice.get("delta") or {}
        if isinstance(text := choice.get("text"), str):  # a text completion's chunk
            delta = {"content": text}
        if "role" not in delta and any(
            k in delta for k in ("content", "reasoning_content", "reasoning", "tool_calls")
        ):
            state.output_chunks += 1
        events: list[Event] = []
        if reasoning := self.reasoning_text(delta):
            events += state.text("reasoning", reasoning)
        if isinstance(content := delta.get("content"), str) and content:
            events += state.text("text", content)
        for call in delta.get("tool_calls") or []:
            events += state.tool_call(call)
        if reason := choice.get("finish_reason"):
            events += state.finish_with(reason)
        return events

    async def fallback_usage(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession, state: StreamState
    ) -> Usage:
        """When the upstream sent no usage: an estimate (one token per delta), logged, never silent."""
        logger.warning("%s sent no usage; estimating it", route.provider.slug)
        return Usage(prompt_tokens=estimate_prompt_tokens(request), completion_tokens=state.deltas)

    async def empty_stream_error(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> UpstreamError:
        """A 200 stream that ended without one event: a server that failed after its headers."""
        return UpstreamError.provider_side(
            ErrorCode.PROVIDER_UNAVAILABLE, f"{route.provider.slug}: the stream ended without an event"
        )

    def answer_events(self, answer: Json, state: StreamState) -> list[Event]:
        """A whole answer's events: those of a stream whose one chunk carried the whole message as its delta
        (its tool calls numbered in order) and the usage (gateway/fold.py folds both alike)."""
        self.handle_chunk_extras(answer, state)
        if isinstance(answer.get("usage"), dict):
            state.usage = parse_usage(answer["usage"])
        events: list[Event] = []
        for choice in answer.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if isinstance(message := choice.get("message"), dict):  # a chat answer; a text one has `text`
                calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls") or [])]
                delta = {**message, "tool_calls": calls}
                choice = {"delta": delta, "finish_reason": choice.get("finish_reason")}
            events += self.choice_events(choice, state)
        return events

    # --- One attempt -----------------------------------------------------------------------
    def stream(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> AsyncGenerator[Event, None]:
        if self.streams(request):
            return self._streamed(request, route, session)
        return self._whole(request, route, session)

    async def _whole(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> AsyncGenerator[Event, None]:
        """A non-streamed request's attempt: the whole answer, asked for and read at once, then its events."""
        body = self.build_body(request, route)
        slug = route.provider.slug
        try:
            answer = await self._fetch_whole(self.url_for(request, route), body, route, session)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(slug, exc) from exc
        choices = answer.get("choices")
        if not isinstance(choices, list) or not any(
            isinstance(c, dict) and c.get("index", 0) == 0 for c in choices
        ):
            raise UpstreamError.provider_side(
                ErrorCode.PROVIDER_UNAVAILABLE, f"{slug}: the answer had no choice: {_excerpt(answer)}"
            )
        state = StreamState()
        events = self.answer_events(answer, state)
        if state.finish is None:  # lenient servers leave finish_reason null, as some streams end without it
            reason = "length" if _reached_the_limit(request, state) else "stop"
            logger.warning("%s: the answer had no finish_reason; finishing as %s", slug, reason)
            events += state.finish_with(reason)
        for event in events:
            yield event
        usage = state.usage or await self.fallback_usage(request, route, session, state)
        if state.provider_metadata:
            usage = replace(usage, provider_metadata={self.kind: dict(state.provider_metadata)})
        yield usage

    async def _fetch_whole(
        self, url: str, body: Json, route: RouteInfo, session: aiohttp.ClientSession
    ) -> Json:
        """POST a non-streamed request; its answer, or the UpstreamError its status or body says (a 200 may
        still carry an error object: Cerebras' CreateChatCompletionResponse admits an ErrorChunkResponse)."""
        async with session.post(
            url,
            data=compact_json(body),
            headers={**self.auth_headers(route), "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=route.provider.timeout_seconds),
        ) as response:
            raw = await response.read()
            if response.status >= 400:
                text, retry_after = raw.decode("utf-8", errors="replace"), response.headers.get("retry-after")
                raise http_failure(route.provider.slug, response.status, text, retry_after)
        try:
            answer = read_json(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            detail = f"malformed upstream answer: {raw[:200].decode('utf-8', errors='replace')}"
            raise UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail)
        if answer.get("error"):
            raise self.stream_error(answer)
        return answer

    async def _streamed(
        self, request: CanonicalRequest, route: RouteInfo, session: aiohttp.ClientSession
    ) -> AsyncGenerator[Event, None]:
        body = self.build_body(request, route)
        state = StreamState()
        slug = route.provider.slug
        try:
            response, events, sse = await self._open(self.url_for(request, route), body, route, session)
            if sse is None:
                response.close()  # not back to the pool: a server that failed mid-response closes it
                raise await self.empty_stream_error(request, route, session)
            complete = False
            try:
                while sse is not None and sse.data.strip() != "[DONE]":
                    for event in self.events_for(sse, state):
                        yield event
                    sse = await anext(events, None)
                complete = True
            finally:
                # Closing (not releasing) an unfinished response drops the connection: it cancels upstream.
                response.release() if complete else response.close()
            if state.finish is None and sse is not None:
                # [DONE] without a finish_reason: lenient servers end so. A normal end, noted in the log.
                reason = "length" if _reached_the_limit(request, state) else "stop"
                logger.warning("%s: the stream ended without a finish_reason; finishing as %s", slug, reason)
                for event in state.finish_with(reason):
                    yield event
            if state.finish is None:
                raise UpstreamError.provider_side(
                    ErrorCode.PROVIDER_UNAVAILABLE, f"{slug}: stream ended before it finished"
                )
            usage = state.usage or await self.fallback_usage(request, route, session, state)
            if state.provider_metadata:
                usage = replace(usage, provider_metadata={self.kind: dict(state.provider_metadata)})
            yield usage
        except UpstreamError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(slug, exc) from exc

    async def _open(
        self, url: str, body: Json, route: RouteInfo, session: aiohttp.ClientSession
    ) -> tuple[aiohttp.ClientResponse, AsyncIterator[SseEvent], SseEvent | None]:
        """POST and wait for the first event, all within the first-byte deadline."""
        seconds = route.provider.timeout_seconds
        first_byte = float(route.options.get("first_byte_timeout_seconds", seconds))
        async with asyncio.timeout(first_byte):
            response = await session.post(
                url,
                data=compact_json(body),
                headers={**self.auth_headers(route), "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=seconds),
            )
            try:
                if response.status >= 400:
                    text = await response.text(errors="replace")
                    retry_after = response.headers.get("retry-after")
                    raise http_failure(route.provider.slug, response.status, text, retry_after)
                events = iter_sse(response)
                return response, events, await anext(events, None)
            except BaseException:
                response.close()
                raise

    # --- Embeddings ------------------------------------------------------------------------
    async def embed(
        self,
        texts: Sequence[str],
        route: RouteInfo,
        session: aiohttp.ClientSession,
        *,
        dimensions: int | None,
    ) -> Embedded:
        if dimensions is not None and not self.shortens_embeddings:
            message = "dimensions: this model's provider cannot shorten its vectors; leave it out"
            raise UpstreamError(ErrorCode.INVALID_REQUEST, message, param="dimensions")
        return await openai_embeddings(texts, route, session, self.auth_headers(route), dimensions=dimensions)

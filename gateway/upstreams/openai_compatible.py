"""The OpenAI Chat Completions dialect: the base adapter for cerebras, fireworks, baseten and llamacpp.

Request (gateway/upstreams/openai_request.py, a mixin of this adapter): canonical → `POST
{base_url}/chat/completions`, or `POST {base_url}/completions` for a legacy text completion. A non-streamed
request asks for the whole answer (`stream: false`, ADR 0019): one JSON object costs the upstream, the wire
and this process less than a stream of chunks, and its `message` reads as the one delta of such a stream, so
both give the same events.
Response: `chat.completion.chunk` frames → canonical events (gateway/upstreams/openai_events.py says how a
delta becomes events). `Usage` comes last, once the stream has ended, because dialects send it after (or
with) the finish frame.

Route options: `max_tokens_field` (the field that carries the token limit) and `first_byte_timeout_seconds`
(default: the provider's timeout), the deadline for a stream's response headers and first event together (a
whole answer has no first byte before its last: the provider's timeout bounds it).

What a dialect reports beside the answer (timings, metrics: `handle_chunk_extras`) rides on the `Usage` as
its provider metadata.
"""

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from typing import ClassVar

from core.encoding import compact_json, read_json
from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Event, Usage
from gateway.tokens import estimate_prompt_tokens
from gateway.upstreams.base import Embedded, RouteInfo, UpstreamAdapter, UpstreamError
from gateway.upstreams.http1 import HttpError, UpstreamClient, UpstreamResponse
from gateway.upstreams.openai_embeddings import openai_embeddings
from gateway.upstreams.openai_errors import Json, classify_error, error_object, error_words, http_failure
from gateway.upstreams.openai_events import StreamState, parse_usage, reached_the_limit
from gateway.upstreams.openai_request import OpenAIRequestMapping
from gateway.upstreams.registry import register
from gateway.upstreams.sse import SseEvent, iter_sse

logger = logging.getLogger(__name__)


def _transport_failure(slug: str, exc: TimeoutError | HttpError) -> UpstreamError:
    """A request that timed out, or whose connection failed (streamed or not)."""
    if isinstance(exc, TimeoutError):
        return UpstreamError.provider_side(ErrorCode.PROVIDER_TIMEOUT, f"{slug}: timed out")
    detail = f"{slug}: {type(exc).__name__}: {exc!r}"
    return UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail)


def _has_first_choice(choices: object) -> bool:
    """Whether an answer's `choices` hold the first one (index 0, or no index). A loop: any() over a
    generator it leaves unfinished throws GeneratorExit into it, for every request."""
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return True
    return False


def _excerpt(answer: Json) -> str:
    return json.dumps(answer)[:200]


# The delta fields that carry output: a chunk with one of them (and no role) is an output chunk.
_OUTPUT_FIELDS = frozenset(("content", "reasoning_content", "reasoning", "tool_calls"))


@register
class OpenAICompatibleAdapter(OpenAIRequestMapping, UpstreamAdapter):
    kind = "openai_compatible"
    label = "OpenAI-compatible"
    reasoning_fields: ClassVar[tuple[str, ...]] = ("reasoning_content", "reasoning")
    completes_text = True
    serves_embeddings = True  # POST /embeddings (gateway/upstreams/openai_embeddings.py)
    shortens_embeddings = True  # OpenAI's `dimensions`

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
            # Its last one, empty with the finish reason, carries no output (as a chat stream's empty delta).
            delta = {"content": text} if text or not choice.get("finish_reason") else {}
        if "role" not in delta and not delta.keys().isdisjoint(_OUTPUT_FIELDS):
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
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient, state: StreamState
    ) -> Usage:
        """When the upstream sent no usage: an estimate (one token per delta), logged, never silent."""
        logger.warning("%s sent no usage; estimating it", route.provider.slug)
        return Usage(prompt_tokens=estimate_prompt_tokens(request), completion_tokens=state.deltas)

    async def empty_stream_error(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
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
    def json_headers(self, route: RouteInfo) -> dict[str, str]:
        """A JSON POST's headers: the dialect's credentials and the content type."""
        return {**self.auth_headers(route), "Content-Type": "application/json"}

    def stream(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        if self.streams(request):
            return self._streamed(request, route, client)
        return self._whole(request, route, client)

    async def _whole(
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        """A non-streamed request's attempt: the whole answer, asked for and read at once, then its events."""
        body = self.build_body(request, route)
        slug = route.provider.slug
        try:
            answer = await self._fetch_whole(self.url_for(request, route), body, route, client)
        except (TimeoutError, HttpError) as exc:
            raise _transport_failure(slug, exc) from exc
        if not _has_first_choice(answer.get("choices")):
            raise UpstreamError.provider_side(
                ErrorCode.PROVIDER_UNAVAILABLE, f"{slug}: the answer had no choice: {_excerpt(answer)}"
            )
        state = StreamState()
        events = self.answer_events(answer, state)
        if state.finish is None:  # lenient servers leave finish_reason null, as some streams end without it
            reason = "length" if reached_the_limit(request, state) else "stop"
            logger.warning("%s: the answer had no finish_reason; finishing as %s", slug, reason)
            events += state.finish_with(reason)
        for event in events:
            yield event
        usage = state.usage or await self.fallback_usage(request, route, client, state)
        if state.provider_metadata:
            usage = replace(usage, provider_metadata={self.kind: dict(state.provider_metadata)})
        yield usage

    async def _fetch_whole(self, url: str, body: Json, route: RouteInfo, client: UpstreamClient) -> Json:
        """POST a non-streamed request; its answer, or the UpstreamError its status or body says (a 200 may
        still carry an error object: Cerebras' CreateChatCompletionResponse admits an ErrorChunkResponse)."""
        async with client.post(
            url, compact_json(body), self.json_headers(route), timeout=route.provider.timeout_seconds
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
        self, request: CanonicalRequest, route: RouteInfo, client: UpstreamClient
    ) -> AsyncGenerator[Event, None]:
        body = self.build_body(request, route)
        state = StreamState()
        slug = route.provider.slug
        try:
            response, events, sse = await self._open(self.url_for(request, route), body, route, client)
            if sse is None:
                response.close()  # not back to the pool: a server that failed mid-response closes it
                raise await self.empty_stream_error(request, route, client)
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
                reason = "length" if reached_the_limit(request, state) else "stop"
                logger.warning("%s: the stream ended without a finish_reason; finishing as %s", slug, reason)
                for event in state.finish_with(reason):
                    yield event
            if state.finish is None:
                raise UpstreamError.provider_side(
                    ErrorCode.PROVIDER_UNAVAILABLE, f"{slug}: stream ended before it finished"
                )
            usage = state.usage or await self.fallback_usage(request, route, client, state)
            if state.provider_metadata:
                usage = replace(usage, provider_metadata={self.kind: dict(state.provider_metadata)})
            yield usage
        except UpstreamError:
            raise
        except (TimeoutError, HttpError) as exc:
            raise _transport_failure(slug, exc) from exc

    async def _open(
        self, url: str, body: Json, route: RouteInfo, client: UpstreamClient
    ) -> tuple[UpstreamResponse, AsyncIterator[SseEvent], SseEvent | None]:
        """POST and wait for the first event, all within the first-byte deadline. After it the provider's
        timeout bounds each silence, not the stream: a long answer at a model's pace runs past it."""
        seconds = route.provider.timeout_seconds
        first_byte = float(route.options.get("first_byte_timeout_seconds", seconds))
        data, headers = compact_json(body), self.json_headers(route)
        async with asyncio.timeout(first_byte):
            response = await client.post(url, data, headers, timeout=seconds, read_timeout=seconds)
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
        client: UpstreamClient,
        *,
        dimensions: int | None,
    ) -> Embedded:
        if dimensions is not None and not self.shortens_embeddings:
            message = "dimensions: this model's provider cannot shorten its vectors; leave it out"
            raise UpstreamError(ErrorCode.INVALID_REQUEST, message, param="dimensions")
        return await openai_embeddings(texts, route, client, self.auth_headers(route), dimensions=dimensions)

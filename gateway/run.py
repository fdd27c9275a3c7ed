"""One admitted request from its upstream to its client (gateway/pipeline.py's third and fourth steps):
the first route that answers (with fallback, and keep-alive comments while a streamed request waits), the
answer sent in the caller's format — streamed in batches (gateway/answer_flow.py) or whole — the client
leaving seen, and the outcome the settlement bills, written to the journal before the client has the
answer's last byte (ADR 0010)."""

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import replace
from typing import Any

from django.conf import settings

from core.encoding import compact_json
from core.errors import ApiError, ErrorCode
from gateway.admission import Admitted
from gateway.answer_flow import batches, cancel_and_wait, client_leaving_cancels
from gateway.canonical import Event, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from gateway.endpoint import INTERNAL_MESSAGE
from gateway.fold import Folded
from gateway.http import (
    SSE_HEADERS,
    ClientGone,
    Receive,
    Send,
    client_left,
    send_json,
    wait_for_disconnect,
)
from gateway.ingress.base import IngressFormat, StreamRenderer
from gateway.metering import Outcome
from gateway.metering.base import total_cost
from gateway.metering.journal import Journal
from gateway.models import GenerationStatus
from gateway.routing import OpenStream, open_stream, usage_when_cancelled
from gateway.session import guarded_fetch_session, upstream_client, web_session
from gateway.tokens import estimate_prompt_tokens
from gateway.tools.loop import usage_sum
from gateway.tools.requested import (
    open_looped,
    tool_costs,
    tool_loop,
)
from gateway.upstreams.base import RouteInfo, UpstreamError

logger = logging.getLogger(__name__)


class Run:
    """One admitted request: upstream events to the client, with keep-alive and disconnect handling."""

    def __init__(
        self,
        fmt: IngressFormat,
        admitted: Admitted,
        request_id: str,
        started: float,
        receive: Receive,
        send: Send,
        id_headers: list[tuple[bytes, bytes]],
        journal: Journal,
    ) -> None:
        self.fmt, self.admitted, self.request_id, self.started = fmt, admitted, request_id, started
        self.receive, self.send, self.id_headers, self.journal = receive, send, id_headers, journal
        self.responding = False  # the response's headers are sent
        self.finished = False  # and its last byte
        self.folded = Folded()
        self.generated: list[str] = []  # the output text and tool arguments, in order, as sent
        self.ttft_ms: int | None = None
        self.upstream_started: float | None = None  # the first upstream request sent
        self.upstream_ended: float | None = None  # the last upstream byte read
        self.journaled: Outcome | None = None  # the outcome the journal had before the client's last byte
        self.loop = (
            None
            if admitted.tools is None
            else tool_loop(admitted.tools, web_session(), guarded_fetch_session(), self._stepped)
        )

    @functools.cached_property
    def renderer(self) -> StreamRenderer:
        """The stream's renderer, made when a stream first needs it (a whole answer never does)."""
        return self.fmt.stream_renderer(
            request_id=self.request_id,
            model=self.admitted.model.slug,
            tool_events=self.admitted.request.tool_events,
        )

    def outcome(
        self, status: str, route: RouteInfo | None = None, error: UpstreamError | None = None
    ) -> Outcome:
        usage = self.folded.usage or Usage(
            prompt_tokens=self.admitted.prompt_estimate, completion_tokens=self.folded.deltas
        )
        return Outcome(
            status=status,
            usage=usage,
            provider=route.provider.slug if route else "",
            upstream_model_id=route.upstream_model_id if route else "",
            finish_reason=self.folded.finish_reason or "",
            error_code=error.code.value if error else "",
            error_detail=error.detail if error else "",
            latency_ms=int((time.monotonic() - self.started) * 1000),
            ttft_ms=self.ttft_ms,
            upstream_ms=self._upstream_ms(),
            tool_costs=self._tool_costs(),
        )

    def _journal_outcome(self, outcome: Outcome) -> Outcome:
        """Before the client has the answer's last bytes: a process killed from here on bills this outcome,
        exactly, rather than a cut-off's estimate (or nothing, for a whole answer already sent)."""
        self.journal.settling(request_id=self.request_id, outcome=outcome)
        self.journaled = outcome
        return outcome

    def _upstream_ms(self) -> int | None:
        if self.upstream_started is None:
            return None
        return int(((self.upstream_ended or time.monotonic()) - self.upstream_started) * 1000)

    def _stepped(self) -> None:
        """What the request owes so far, in the journal (a process killed from here on bills it)."""
        assert self.loop is not None
        self.journal.stepped(
            request_id=self.request_id,
            usage=self.loop.usage,
            tool_costs=self._tool_costs(),
            delivered=self.folded.deltas,
        )

    def _tool_costs(self) -> dict[str, int]:
        tools = self.admitted.tools
        if tools is None or self.loop is None:
            return {}
        return tool_costs(tools, self.loop, self.admitted.pdf_pages)

    def _failed(self, error: UpstreamError, route: RouteInfo | None = None) -> Outcome:
        logger.warning("request %s failed: %s: %s", self.request_id, error.code.value, error.detail)
        return self.outcome(GenerationStatus.FAILED, route, error)

    @property
    def _plain_whole(self) -> bool:
        """A whole answer without server tools: the upstream's answer, read to its end in one await."""
        return not self.admitted.request.stream and self.loop is None

    async def execute(self) -> Outcome:
        if self._plain_whole:
            # Nothing to race the client leaving against: it is asked about once, when the answer is made
            # (gateway.http.client_left), rather than watched by a task for the whole request.
            return await self._execute(None)
        disconnect = asyncio.create_task(wait_for_disconnect(self.receive))
        try:
            return await self._execute(disconnect)
        finally:
            disconnect.cancel()

    async def _execute(self, disconnect: asyncio.Future[None] | None) -> Outcome:
        try:
            opened = await self._open(disconnect)
        except UpstreamError as exc:
            if self.responding:  # the stream had begun (a slow upstream): the error ends it
                await self._frames(self.renderer.error(exc.code, exc.message), last=True)
            else:
                await self._send_error_response(exc.code, exc.message, exc.param, retry_after=exc.retry_after)
            return self._failed(exc)
        except ClientGone:
            # Gone before any route answered: nothing was produced for it, so nothing is billed.
            return replace(self.outcome(GenerationStatus.CANCELLED), usage=Usage(0, 0))
        route = opened.route
        self.journal.routed(
            request_id=self.request_id,
            provider=route.provider.slug,
            upstream_model_id=route.upstream_model_id,
        )
        if self.admitted.request.stream:
            assert disconnect is not None
            return await self._stream(opened, disconnect)
        return await self._respond_whole(opened, disconnect)

    async def _open(self, disconnect: asyncio.Future[None] | None) -> OpenStream:
        """The first route that answers (routing.open_stream, with its fallback). A streamed request whose
        upstream stays silent past the keep-alive interval gets its headers and keep-alive comments
        meanwhile, so no proxy cuts it off; an error that comes after that goes into the stream."""
        request, model = self.admitted.request, self.admitted.model
        self.upstream_started = time.monotonic()
        attempt = (
            open_stream(request, model, upstream_client())
            if self.loop is None
            else open_looped(request, model, upstream_client(), self.loop)
        )
        if disconnect is None:
            # A whole answer is read to its end, the client there or not: a provider asked for a whole
            # answer makes and bills all of it, so the workspace pays for all of it (ADR 0019).
            return await attempt
        if not request.stream:
            # No keep-alive to send before a whole answer: this task waits itself (no task and wait more).
            async with client_leaving_cancels(disconnect):
                return await attempt
        opening = asyncio.create_task(attempt)
        watched: set[asyncio.Future[Any]] = {opening, disconnect}
        while True:
            done, _ = await asyncio.wait(
                watched,
                timeout=settings.GATEWAY_KEEPALIVE_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if opening in done:
                return opening.result()
            if disconnect in done:
                await cancel_and_wait(opening)
                raise ClientGone
            if self.admitted.request.stream:
                await self._begin_stream()
                await self._keepalive()

    async def _begin_stream(self) -> None:
        if not self.responding:
            headers = [*SSE_HEADERS, *self.id_headers]
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            self.responding = True
            await self._frames(self.renderer.start())

    def _mark(self, event: Event) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.monotonic() - self.started) * 1000)
        self.folded.add(event)
        if isinstance(event, TextDelta | ReasoningDelta):
            self.generated.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self.generated.append(event.arguments)

    async def _stream(self, opened: OpenStream, disconnect: asyncio.Future[None]) -> Outcome:
        await self._begin_stream()
        held: list[bytes] = []  # the last batch's frames, sent with the answer's end in one write
        unsent: list[Event] = []  # read from the upstream, not sent: the client left first
        flow = batches(opened, disconnect, self._keepalive, unsent)
        try:
            delivered = 0
            async for batch, last in flow:
                frames: list[bytes] = []
                for event in batch:
                    self._mark(event)
                    frames += self.renderer.render(event)
                if last:  # the generator ends next (not `break`: it would be closed later, in a task)
                    held = frames  # the journal has the outcome before the client has these
                    continue
                if self.folded.deltas != delivered:
                    # Before the client has it: a process killed from here on bills what it delivered.
                    delivered = self.folded.deltas
                    self.journal.delivered(request_id=self.request_id, count=delivered)
                await self._frames(frames)
            self.upstream_ended = time.monotonic()
        except ClientGone:
            await flow.aclose()  # now, not when collected: the upstream closed, what it sent in `unsent`
            for event in unsent:  # generated, so paid for (design §3), though the client never had it
                self._mark(event)
            return await self._cancelled(opened)
        except UpstreamError as exc:
            await self._frames(self.renderer.error(exc.code, exc.message), last=True)
            return self._failed(exc, opened.route)
        outcome = self._journal_outcome(self.outcome(GenerationStatus.COMPLETED, opened.route))
        cost_usd = _usd(total_cost(self.admitted.model, outcome))
        await self._frames([*held, *self.renderer.finish(outcome.usage, cost_usd)], last=True)
        return outcome

    async def _respond_whole(self, opened: OpenStream, disconnect: asyncio.Future[None] | None) -> Outcome:
        try:
            if disconnect is None:
                await self._fold_to_the_end(opened)
            else:
                await self._fold_whole(opened, disconnect)
        except ClientGone:
            return await self._cancelled(opened)
        except UpstreamError as exc:
            await self._send_error_response(exc.code, exc.message)
            return self._failed(exc, opened.route)
        gone = (
            client_left(self.receive)
            if disconnect is None
            else disconnect.done() and not disconnect.cancelled()
        )
        if gone:
            # Gone while the answer was made: billed whole, as the provider made it, and not sent.
            return self.outcome(GenerationStatus.CANCELLED, opened.route)
        outcome = self._journal_outcome(self.outcome(GenerationStatus.COMPLETED, opened.route))
        body = self.fmt.response_object(
            request_id=self.request_id,
            model=self.admitted.model.slug,
            created=int(time.time()),
            folded=self.folded,
            usage=outcome.usage,
            cost_usd=_usd(total_cost(self.admitted.model, outcome)),
        )
        await self._safe_send_json(200, compact_json(body))
        return outcome

    async def _fold_to_the_end(self, opened: OpenStream) -> None:
        """A non-streamed answer's events, all of them (a whole answer's are in memory already)."""
        self._mark(opened.first)
        async for event in opened.rest:
            self._mark(event)
        self.upstream_ended = time.monotonic()

    async def _fold_whole(self, opened: OpenStream, disconnect: asyncio.Future[None]) -> None:
        """A non-streamed server-tool loop's events, read straight from the upstream: no keep-alive to send,
        so no race per event (a task and a wait each, most of the per-event cost). The client leaving
        cancels this task instead, which closes the upstream connection and ends the loop; it comes out as
        ClientGone."""
        try:
            async with client_leaving_cancels(disconnect):
                self._mark(opened.first)
                async for event in opened.rest:
                    self._mark(event)
                self.upstream_ended = time.monotonic()
        except ClientGone:
            await opened.rest.aclose()  # closes the upstream connection: the provider stops generating
            raise

    async def _cancelled(self, opened: OpenStream) -> Outcome:
        """The client left mid-answer: it pays for the prompt and what it was sent, as the upstream counts
        them where it can, else as estimated (the journal already holds that estimate, ADR 0010)."""
        outcome = self.outcome(GenerationStatus.CANCELLED, opened.route)
        if self.loop is not None and self.folded.usage is None:
            # The finished steps as their upstreams counted them, and the step under way (if one is: not
            # while the tools run) as estimated.
            loop, under_way = self.loop, None
            if loop.current is not None:
                under_way = Usage(estimate_prompt_tokens(loop.current), loop.step_deltas)
            return replace(outcome, usage=usage_sum(loop.usage, under_way) or Usage(0, 0))
        if self.folded.usage is None:
            counted = await usage_when_cancelled(
                self.admitted.request, opened, upstream_client(), self.generated
            )
            if counted is not None:
                outcome = replace(outcome, usage=counted)
        return outcome

    async def fail_internally(self) -> None:
        """Tell the client the gateway failed, in whatever part of the response it is in."""
        with contextlib.suppress(Exception):  # the client may be gone, or the renderer be what failed
            if not self.responding:
                await self._send_error_response(ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE)
            elif not self.finished and self.admitted.request.stream:
                await self._frames(self.renderer.error(ErrorCode.INTERNAL_ERROR, INTERNAL_MESSAGE), last=True)

    async def _send_error_response(
        self, code: ErrorCode, message: str, param: str | None = None, *, retry_after: str | None = None
    ) -> None:
        body = compact_json(self.fmt.error_body(code, message, self.request_id, param))
        headers = []
        if code in _COME_BACK_LATER:  # when to come back: the provider's word (or the slots'), else a second
            seconds = retry_after if retry_after and retry_after.isdigit() else "1"
            headers.append((b"retry-after", seconds.encode()))
        await self._safe_send_json(ApiError(code, message).status, body, headers)

    async def _safe_send_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.responding = self.finished = True
        try:
            await send_json(self.send, status, body, [*self.id_headers, *(headers or [])])
        except OSError:
            logger.info("client %s went away before the response", self.request_id)

    async def _frames(self, frames: list[bytes], last: bool = False) -> None:
        self.finished = self.finished or last
        if frames or last:
            await self.send({"type": "http.response.body", "body": b"".join(frames), "more_body": not last})

    async def _keepalive(self) -> None:
        await self.send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})


_COME_BACK_LATER = frozenset({ErrorCode.PROVIDER_RATE_LIMIT, ErrorCode.PROVIDER_OVERLOADED})


def _usd(micro: int) -> float:
    return micro / 1_000_000

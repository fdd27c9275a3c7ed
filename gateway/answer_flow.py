"""How an upstream's events reach the response loop (gateway/pipeline.py): in batches of what arrived
together, with only an idle wait timed (for the keep-alive), and the client leaving seen as an end, not
raced against each event (a task and a wait per event were most of a stream's cost: ADR 0018)."""

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

from django.conf import settings

from gateway.canonical import Event
from gateway.http import ClientGone
from gateway.routing import OpenStream

# Events sent from the inbox in one batch, before a pause: a whole answer can arrive at once (a fast upstream,
# several tokens a chunk), and sending it in one go would hold back other requests' first bytes (bursts of
# 32 put the bench's time to first byte at 32 clients up by 1.3 ms, bench/README.md).
_BURST = 8
# What the inbox holds besides events: the end of the answer, the client gone, the upstream quiet too long.
_END, _GONE, _IDLE = object(), object(), object()


class _Inbox:
    """What the reader task hands the response loop, in order, with one waiter at a time. An asyncio.Queue
    and an `asyncio.timeout` around each wait cost ~4 µs a delta more when tokens come one by one
    (bench/README.md); the keep-alive is one timer a stream instead (`_KeepAlive`)."""

    __slots__ = ("items", "loop", "waiter", "waiting_since")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque[object] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.waiting_since: float | None = None  # the loop's time the response loop began waiting, if it is

    def put(self, item: object) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something is in the inbox."""
        self.waiting_since = self.loop.time()
        try:
            while not self.items:
                self.waiter = self.loop.create_future()
                await self.waiter
        finally:
            self.waiter = self.waiting_since = None


class _KeepAlive:
    """Puts _IDLE in the inbox once the response loop has waited `seconds` for the upstream: one timer for
    the stream, moved on when it fires early, not one set and cancelled for each wait."""

    def __init__(self, inbox: _Inbox, seconds: float) -> None:
        self.inbox, self.seconds = inbox, seconds
        self.timer = inbox.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        inbox, now = self.inbox, self.inbox.loop.time()
        since = inbox.waiting_since
        if since is not None and now - since >= self.seconds and not inbox.items:
            inbox.put(_IDLE)
            since = now  # the keep-alive ends this silence; the next is counted from here
        self.timer = inbox.loop.call_at((since if since is not None else now) + self.seconds, self._check)

    def cancel(self) -> None:
        self.timer.cancel()


async def batches(
    opened: OpenStream,
    disconnect: asyncio.Future[None],
    on_idle: Callable[[], Awaitable[None]],
    unsent: list[Event] | None = None,
) -> AsyncGenerator[tuple[list[Event], bool], None]:
    """The route's events as they arrive, in batches of what is there at once (up to _BURST), each with
    whether it is the last (the answer's end came with it: the caller sends it with the answer's end, in
    one write). Each batch is one send to the client and one journal line, not one per event. Raises
    ClientGone when the client disconnects, after closing the upstream connection. One reader task for the
    whole answer fills an inbox; `on_idle` runs when the upstream has been quiet for the keep-alive interval:
    no task and race per event (bench/README.md).

    The reader does not wait for the client: what the upstream generated is read, and paid for, whether
    or not the client takes it. Ended early (closed, or the client gone), the events read and never
    yielded are put in `unsent` once the upstream connection is closed."""
    yield [opened.first], False
    inbox = _Inbox(asyncio.get_running_loop())
    reader = asyncio.create_task(_pump(opened.rest, inbox))
    keepalive = _KeepAlive(inbox, settings.GATEWAY_KEEPALIVE_SECONDS)

    def client_gone(done: asyncio.Future[None]) -> None:
        if not done.cancelled():
            inbox.put(_GONE)

    disconnect.add_done_callback(client_gone)
    try:
        while True:
            if not inbox.items:
                await inbox.wait()
            items: list[object] = []
            while len(items) < _BURST and inbox.items:
                item = inbox.items.popleft()
                if item is not _IDLE:
                    items.append(item)
            if not items:  # the upstream was quiet for the interval, and still is
                await on_idle()
                continue
            batch: list[Event] = []
            for item in items:
                if item is _GONE or (disconnect.done() and not disconnect.cancelled()):
                    # Nothing more counts as delivered; what was taken for this batch goes back, unsent.
                    at = next(n for n, taken in enumerate(items) if taken is item)
                    inbox.items.extendleft(reversed([*batch, *items[at:]]))
                    raise ClientGone
                if item is _END:
                    yield batch, True
                    return
                if isinstance(item, BaseException):
                    if batch:
                        yield batch, False
                    raise item
                batch.append(cast(Event, item))
            yield batch, False
            if len(items) == _BURST:
                await asyncio.sleep(0)  # let other requests' steps run between long bursts
    finally:
        keepalive.cancel()
        disconnect.remove_done_callback(client_gone)
        # Stopped early (the client left, a failure): cancelling the reader closes the upstream
        # connection, so the provider stops generating.
        await cancel_and_wait(reader)
        await opened.rest.aclose()
        if unsent is not None:
            unsent += (cast(Event, item) for item in inbox.items if _is_event(item))


def _is_event(item: object) -> bool:
    return not (item is _END or item is _GONE or item is _IDLE or isinstance(item, BaseException))


async def _pump(events: AsyncGenerator[Event, None], inbox: _Inbox) -> None:
    """Every event of `events` into the inbox, then _END, or the exception that ended them."""
    try:
        async for event in events:
            inbox.put(event)
    except Exception as exc:  # an UpstreamError (or a bug): the response loop raises it
        inbox.put(exc)
        return
    inbox.put(_END)


@contextlib.asynccontextmanager
async def client_leaving_cancels(disconnect: asyncio.Future[None]) -> AsyncIterator[None]:
    """The current task is cancelled if the client disconnects while inside; that comes out as ClientGone.
    Cheaper than racing the work against the disconnect in a task of its own (bench/README.md)."""
    task = asyncio.current_task()
    assert task is not None
    inside = True

    def client_gone(done: asyncio.Future[None]) -> None:
        if inside and not done.cancelled():  # a callback scheduled just before the block ended is late
            task.cancel()

    disconnect.add_done_callback(client_gone)
    try:
        yield
    except asyncio.CancelledError:
        if not disconnect.done() or disconnect.cancelled():
            raise  # not the client: the server is stopping
        task.uncancel()
        raise ClientGone from None
    finally:
        inside = False
        disconnect.remove_done_callback(client_gone)


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
        await task

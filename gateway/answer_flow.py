"""How an upstream's events reach the response loop (gateway/pipeline.py): in batches of what arrived
together, with only an idle wait timed (for the keep-alive), and the client leaving seen as an end, not
raced against each event (a task and a wait per event were most of a stream's cost: ADR 0018)."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

from django.conf import settings

from gateway.canonical import Event
from gateway.http import ClientGone
from gateway.routing import OpenStream

# Events sent from the queue in one batch, before a pause: a whole answer can arrive at once (a fast upstream,
# several tokens a chunk), and sending it in one go would hold back other requests' first bytes (bursts of
# 32 put the bench's time to first byte at 32 clients up by 1.3 ms, bench/README.md).
_BURST = 8
# What the reader puts in the queue besides events: the end of the answer, or the client gone.
_END, _GONE = object(), object()


async def batches(
    opened: OpenStream, disconnect: asyncio.Future[None], on_idle: Callable[[], Awaitable[None]]
) -> AsyncGenerator[tuple[list[Event], bool], None]:
    """The route's events as they arrive, in batches of what is there at once (up to _BURST), each with
    whether it is the last (the answer's end came with it: the caller sends it with the answer's end, in
    one write). Each batch is one send to the client and one journal line, not one per event. Raises
    ClientGone when the client disconnects, after closing the upstream connection. One reader task for the
    whole answer fills a queue, and only an idle wait (nothing queued) is timed, for the keep-alive: no
    task and race per event (bench/README.md)."""
    yield [opened.first], False
    queue: asyncio.Queue[object] = asyncio.Queue()
    reader = asyncio.ensure_future(_pump(opened.rest, queue))

    def client_gone(done: asyncio.Future[None]) -> None:
        if not done.cancelled():
            queue.put_nowait(_GONE)

    disconnect.add_done_callback(client_gone)
    try:
        while True:
            items: list[object] = []
            if queue.empty():
                try:
                    async with asyncio.timeout(settings.GATEWAY_KEEPALIVE_SECONDS):
                        items.append(await queue.get())
                except TimeoutError:
                    await on_idle()
                    continue
            while len(items) < _BURST and not queue.empty():
                items.append(queue.get_nowait())
            batch: list[Event] = []
            for item in items:
                if item is _GONE or (disconnect.done() and not disconnect.cancelled()):
                    raise ClientGone  # nothing more counts as delivered
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
        disconnect.remove_done_callback(client_gone)
        # Stopped early (the client left, a failure): cancelling the reader closes the upstream
        # connection, so the provider stops generating.
        await cancel_and_wait(reader)
        await opened.rest.aclose()


async def _pump(events: AsyncGenerator[Event, None], queue: "asyncio.Queue[object]") -> None:
    """Every event of `events` into the queue, then _END, or the exception that ended them."""
    try:
        async for event in events:
            queue.put_nowait(event)
    except Exception as exc:  # an UpstreamError (or a bug): the reader of the queue raises it
        queue.put_nowait(exc)
        return
    queue.put_nowait(_END)


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

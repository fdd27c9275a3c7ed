"""How many requests this process has under way to each provider that sets `max_concurrency`
(providers.yaml), and the requests waiting for one of them to end (ADR 0029).

A provider of fixed capacity (a local llama.cpp or Jan server with a few slots, a dedicated deployment, an
account's concurrency quota) takes more requests than it can serve by queueing them itself, each then
waiting out the provider's timeout, or by refusing them after a round trip. Here a route whose provider has
`max_concurrency` requests under way is sent no more: a request waits for one of them to end, first come
first served, if fewer than `max_queued` already wait and for at most `queue_timeout_seconds`; otherwise it
goes on to its model's next route, as after a provider's own 529, and with no route left the client gets
provider_overloaded (529, Retry-After). Nothing was sent, so nothing is billed, and the route's health
(route_health.py) is not touched: the provider did not fail.

The limit is per process, as the connection pool is: a deployment of N workers sends a provider at most N
times its limit. A request holds its slot from its upstream call until the call's events end or are closed
(a stream to its last byte, a client that left, a failure); a server-tool loop takes one a step, and none
while its tools run. A provider without a limit costs a request one attribute read.
"""

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from typing import TypeVar

from core.errors import ErrorCode
from gateway import metrics
from gateway.upstreams.base import ProviderInfo, UpstreamError

RETRY_AFTER_SECONDS = "1"  # a slot frees when a request ends: usually within seconds
FULL_MESSAGE = "The model's provider is at its limit of concurrent requests; try again shortly."

T = TypeVar("T")


class ProviderFull(UpstreamError):
    """Not sent: every slot of the provider taken, and its queue full or waited out (provider_overloaded)."""


class ProviderSlots:
    """One provider's slots in this process (one event loop: its futures are that loop's)."""

    __slots__ = ("limit", "max_queued", "queue_timeout", "slug", "under_way", "waiting")

    def __init__(self, provider: ProviderInfo, limit: int) -> None:
        self.slug = provider.slug
        self.limit = limit
        self.max_queued = provider.max_queued
        self.queue_timeout = provider.queue_timeout_seconds
        self.under_way = 0
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        """A slot, at once or after waiting its turn; raises ProviderFull (provider_overloaded) when the queue
        is full or the wait ran out. Cancelled while waiting, it leaves the queue (and a slot handed to it
        in that moment goes to the next in line)."""
        if self.under_way < self.limit and not self.waiting:
            self.under_way += 1
            return
        if len(self.waiting) >= self.max_queued:
            raise self._full("queue_full", f"{self.under_way} under way, {len(self.waiting)} waiting")
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot as it stopped waiting: the next in line has it
            else:
                with suppress(ValueError):
                    self.waiting.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise self._full("waited", f"no slot within {self.queue_timeout:g} s") from None
            raise

    def give_back(self) -> None:
        """A request's call ended: its slot goes to the first still waiting, or is free."""
        waiting = self.waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # handed over: as many under way as before
                return
        self.under_way -= 1

    async def holding(self, events: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """`events`, whose slot (taken) is given back when they end or are closed, and not before."""
        try:
            async for event in events:
                yield event
        finally:
            try:
                await events.aclose()  # the upstream connection, closed before another request may call
            finally:
                self.give_back()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """A slot for the length of the block (a call whose answer is read whole: embeddings)."""
        await self.take()
        try:
            yield
        finally:
            self.give_back()

    def reconfigure(self, provider: ProviderInfo, limit: int) -> None:
        """The catalog changed the provider's figures: a higher limit lets those waiting in at once."""
        self.limit, self.max_queued = limit, provider.max_queued
        self.queue_timeout = provider.queue_timeout_seconds
        while self.under_way < self.limit and self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():  # (one cancelled meanwhile takes nothing)
                self.under_way += 1
                waiter.set_result(None)

    def _full(self, why: str, detail: str) -> ProviderFull:
        metrics.provider_full(self.slug, why)
        return ProviderFull(
            ErrorCode.PROVIDER_OVERLOADED,
            FULL_MESSAGE,
            retry_after=RETRY_AFTER_SECONDS,
            detail=f"{self.slug}: max_concurrency {self.limit} reached ({detail})",
        )


_by_slug: dict[str, ProviderSlots] = {}


def slots_for(provider: ProviderInfo, limit: int) -> ProviderSlots:
    """The slots in this process of a provider whose max_concurrency is `limit` (callers read it first: a
    provider without one takes no slot)."""
    slots = _by_slug.get(provider.slug)
    if slots is None:
        slots = _by_slug[provider.slug] = ProviderSlots(provider, limit)
    elif (slots.limit, slots.max_queued, slots.queue_timeout) != (
        limit, provider.max_queued, provider.queue_timeout_seconds
    ):  # fmt: skip
        slots.reconfigure(provider, limit)
    return slots


def slot_held(provider: ProviderInfo) -> AbstractAsyncContextManager[None]:
    """For a call whose answer is read whole (embeddings): one of the provider's slots for the length of
    the block, or nothing to hold when it sets no limit."""
    limit = provider.max_concurrency
    return nullcontext() if limit is None else slots_for(provider, limit).held()


def _publish_counts() -> None:
    """The metrics' publisher thread, every second: reads of two ints a provider."""
    for slots in list(_by_slug.values()):
        metrics.provider_requests(slots.slug, under_way=slots.under_way, waiting=len(slots.waiting))


metrics.sample_each_publish(_publish_counts)


def forget() -> None:
    """As if no request were under way anywhere (tests: each test's loop is new)."""
    _by_slug.clear()

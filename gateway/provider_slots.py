"""How many requests are under way to each provider that sets `max_concurrency` (providers.yaml), and the
requests waiting for one of them to end (ADR 0029).

A provider of fixed capacity (a local llama.cpp or Jan server with a few slots, a dedicated deployment, an
account's concurrency quota) takes more requests than it can serve by queueing them itself, each then
waiting out the provider's timeout, or by refusing them after a round trip. Here a route whose provider has
`max_concurrency` requests under way is sent no more: a request waits for one of them to end, first come
first served, if fewer than `max_queued` already wait and for at most `queue_timeout_seconds`; otherwise it
goes on to its model's next route, as after a provider's own 529, and with no route left the client gets
provider_overloaded (529, Retry-After). Nothing was sent, so nothing is billed, and the route's health
(route_health.py) is not touched: the provider did not fail.

With the Redis meter (production) the limit holds across every gateway process and deployment that meters
on that Redis (`SharedSlots`: a lease in Redis a call); with the SQL meter (one process, the embedded
default) it is the process's own count (`ProviderSlots`). Either way the queue is a process's own. A request
holds its slot from its upstream call until the call's events end or are closed (a stream to its last
byte, a client that left, a failure); a server-tool loop takes one a step, and none while its tools run. A
provider without a limit costs a request one attribute read.
"""

import asyncio
import functools
import itertools
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from typing import Any, TypeVar

from core.errors import ErrorCode
from core.hot_settings import hot
from core.processes import current_pid
from gateway import metrics
from gateway.metering.redis_meter import REDIS_FAILURES, loop_client
from gateway.upstreams.base import ProviderInfo, UpstreamError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"  # a slot frees when a request ends: usually within seconds
FULL_MESSAGE = "The model's provider is at its limit of concurrent requests; try again shortly."

T = TypeVar("T")


class ProviderFull(UpstreamError):
    """Not sent: every slot of the provider taken, and its queue full or waited out (provider_overloaded)."""


class ProviderSlots:
    """One provider's slots, counted by this process alone (one event loop: its futures are that loop's)."""

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
        if not self.waiting and await self._claim():
            return
        if len(self.waiting) >= self.max_queued:
            detail = f"{self.under_way} under way from this process, {len(self.waiting)} waiting in it"
            raise self._full("queue_full", detail)
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        self._queue_grew()
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
        if not self._hand_over():
            self._free()

    def _hand_over(self) -> bool:
        """The slot of a call that ended to the first request still waiting: as many under way as before."""
        waiting = self.waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    async def _claim(self) -> bool:
        """One more under way, if the limit allows it now."""
        if self.under_way < self.limit:
            self.under_way += 1
            return True
        return False

    def _queue_grew(self) -> None:
        """A request began to wait (here a slot only frees when one of this process's calls ends)."""

    def _free(self) -> None:
        """One under way fewer: a slot is free (not handed over)."""
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


# A lease outlives a process that died (or lost Redis) by this at most: then its slot is free again.
LEASE_SECONDS = 10.0
LEASE_MS = int(LEASE_SECONDS * 1000)
RENEW_SECONDS = LEASE_SECONDS / 3  # the leases of calls still under way are renewed this often
# While requests wait in a process, how often it asks Redis for a slot another process gave back.
POLL_SECONDS = 0.02
# A process hands the slots of its calls that end to its own waiters this many times in a row at most; the
# next goes back to Redis, and the process skips its asks for YIELD_SECONDS, so that requests waiting in
# other processes have it (a busy process's queue would otherwise keep every slot to itself).
HAND_OVERS_IN_A_ROW = 4
YIELD_SECONDS = 2 * POLL_SECONDS
FAILURE_LOG_SECONDS = 10.0  # a Redis that keeps failing is logged this often, not for every request


def leases_name(slug: str) -> str:
    """A provider's leases in the meter's Redis, in a hash tag of their own (one cluster slot)."""
    return f"hi:ps:{{{slug}}}"


class SharedSlots(ProviderSlots):
    """A provider's slots shared by every gateway process that meters on one Redis (the Redis meter:
    production). Each call under way holds a lease in Redis, taken only while fewer than the limit are held
    (scripts.SLOT_TAKE). A call that ends hands its lease to the first request waiting in its process, else
    gives it back — but not more than HAND_OVERS_IN_A_ROW times in a row, then it yields one to the other
    processes. Requests wait in their own process's queue, first come first served there; while some wait,
    the process asks Redis every POLL_SECONDS for a slot another one gave back (between processes no order
    is kept: the first to ask after a slot frees has it). A lease lapses LEASE_SECONDS after it was
    taken or last renewed, so the slots of a process that died are free within that; a live process
    renews its leases every RENEW_SECONDS. When Redis fails, the process counts alone (its own calls
    against the limit, as ProviderSlots does) until Redis answers again, and says so in the log."""

    __slots__ = ("asking", "handed_in_a_row", "leases", "name", "pending", "renewing", "yielding_until")

    def __init__(self, provider: ProviderInfo, limit: int) -> None:
        super().__init__(provider, limit)
        self.name = leases_name(provider.slug)
        # This process's leases in Redis: one a call under way, fewer for calls admitted while Redis failed.
        self.leases: list[str] = []
        self.asking: asyncio.TimerHandle | None = None  # the next ask for a slot, while requests wait
        self.renewing: asyncio.TimerHandle | None = None  # the next renewal, while leases are held
        self.pending: set[asyncio.Task[None]] = set()  # give-backs, renewals and asks under way
        # Slots of calls that ended handed to this process's waiters since one last went back to Redis.
        self.handed_in_a_row = 0
        self.yielding_until = 0.0  # the loop's time: until then this process's waiters do not ask Redis

    def give_back(self) -> None:
        """A call ended: its slot goes to the first waiting in this process, unless it went so the last
        HAND_OVERS_IN_A_ROW times; then back to Redis, for requests waiting in other processes to ask."""
        if self.handed_in_a_row < HAND_OVERS_IN_A_ROW and self._hand_over():
            self.handed_in_a_row += 1
            return
        if self.waiting:  # a hand-over refused: others' asks come first for a moment
            self.yielding_until = asyncio.get_running_loop().time() + YIELD_SECONDS
        self.handed_in_a_row = 0
        self._free()

    async def _claim(self) -> bool:
        lease = _new_lease_id()
        _, run = loop_client()
        call = asyncio.ensure_future(run.slot_take(keys=[self.name], args=[self.limit, lease, LEASE_MS]))
        try:
            taken = await asyncio.shield(call)  # a request cancelled while it asks leaves the call to end
        except asyncio.CancelledError:
            call.add_done_callback(functools.partial(self._give_back_if_taken, lease))
            raise
        except REDIS_FAILURES as exc:
            _redis_failed(self.slug, "taking a slot", exc)
            return await super()._claim()
        if not taken:
            return False
        self.under_way += 1
        self.leases.append(lease)
        if self.renewing is None:
            self.renewing = asyncio.get_running_loop().call_later(RENEW_SECONDS, self._renew)
        return True

    def _free(self) -> None:
        super()._free()
        if len(self.leases) > self.under_way:
            self._spawn(self._give_back_lease(self.leases.pop()))

    def _queue_grew(self) -> None:
        if self.asking is None:
            self.asking = asyncio.get_running_loop().call_later(POLL_SECONDS, self._ask)

    def reconfigure(self, provider: ProviderInfo, limit: int) -> None:
        """The catalog changed the provider's figures: those waiting ask Redis with the new limit."""
        self.limit, self.max_queued = limit, provider.max_queued
        self.queue_timeout = provider.queue_timeout_seconds

    def _ask(self) -> None:
        self.asking = None
        if not self.waiting:
            return
        if asyncio.get_running_loop().time() < self.yielding_until:
            self._queue_grew()  # this process just let a slot go to the others' waiters: not now
            return
        self._spawn(self._claim_for_the_first())

    async def _claim_for_the_first(self) -> None:
        try:
            if self.waiting and await self._claim():
                self.handed_in_a_row = 0  # a slot from Redis: a new turn
                if not self._hand_over():  # the first still waiting has it; none left: back to Redis
                    self._free()
        finally:
            if self.waiting:
                self._queue_grew()

    def _renew(self) -> None:
        self.renewing = None
        if self.leases:
            self._spawn(self._renew_leases(list(self.leases)))
            self.renewing = asyncio.get_running_loop().call_later(RENEW_SECONDS, self._renew)

    async def _renew_leases(self, leases: list[str]) -> None:
        _, run = loop_client()
        try:
            missing = await run.slot_renew(keys=[self.name], args=[LEASE_MS, *leases])
        except REDIS_FAILURES as exc:
            _redis_failed(self.slug, f"renewing {len(leases)} slot leases", exc)
            return
        lapsed = {lease.decode() for lease in missing} & set(self.leases)
        if lapsed:  # Redis did not hear from this process for a whole lease, or lost its data
            logger.warning(
                "%s: %d slot leases had lapsed in Redis; their calls go on, counted by this process only",
                self.slug, len(lapsed),
            )  # fmt: skip
            self.leases = [lease for lease in self.leases if lease not in lapsed]

    async def _give_back_lease(self, lease: str) -> None:
        _, run = loop_client()
        try:
            await run.slot_give_back(keys=[self.name], args=[lease])
        except REDIS_FAILURES as exc:
            _redis_failed(self.slug, f"giving a slot back (it lapses within {LEASE_SECONDS:g} s)", exc)

    def _give_back_if_taken(self, lease: str, call: "asyncio.Future[int]") -> None:
        """A request cancelled while it asked for a slot: a lease Redis gave it goes back."""
        if not call.cancelled() and call.exception() is None and call.result():
            self._spawn(self._give_back_lease(lease))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)  # kept from the collector until done
        task.add_done_callback(self.pending.discard)


_serial = itertools.count()


@functools.cache
def _lease_owner(pid: int) -> str:
    """A process's part of its leases' ids (a forked child has its own pid, so its own part)."""
    return f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"


def _new_lease_id() -> str:
    """Unique across processes and hosts, and readable to an operator who looks at a provider's leases."""
    return f"{_lease_owner(current_pid())}:{next(_serial)}"


_failure_logged: dict[str, float] = {}


def _redis_failed(slug: str, doing: str, exc: BaseException) -> None:
    now = time.monotonic()
    if now - _failure_logged.get(slug, -FAILURE_LOG_SECONDS) >= FAILURE_LOG_SECONDS:
        _failure_logged[slug] = now
        logger.warning(
            "%s: %s in Redis failed (%s); this process counts its own calls against the limit meanwhile",
            slug, doing, exc,
        )  # fmt: skip


_by_slug: dict[str, ProviderSlots] = {}


def slots_for(provider: ProviderInfo, limit: int) -> ProviderSlots:
    """The slots in this process of a provider whose max_concurrency is `limit` (callers read it first: a
    provider without one takes no slot)."""
    slots = _by_slug.get(provider.slug)
    if slots is None:
        shared = hot.GATEWAY_METER == "redis"  # every process meters on one Redis: they share the slots
        slots = _by_slug[provider.slug] = (SharedSlots if shared else ProviderSlots)(provider, limit)
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

"""Which routes have been failing: a route that failed FAILURES_TO_COOL times in a row before its first
event is tried after its model's other routes for COOLDOWN_SECONDS, then given one request to find out whether
it answers again (ADR 0027).

A provider that stops answering (a partition, a stuck server) fails nothing: each request of its model
waited out the provider's timeout (60 s by default) before the next route answered it. A provider that
refuses at once costs a connection attempt a request; one that is overloaded or rate-limited, a round trip.
Cooling moves the route last rather than dropping it: with every route cooling, the model still tries them
all in their order, so a cooldown never refuses a request that a route could have answered.

A route is its provider and upstream model: a provider down takes all its routes, but an overloaded or
rate-limited model takes only its own.

Each process counts its own failures. With the Redis meter (production: every process on one Redis), a
cooldown a process begins, and a cooling route it sees answer again, are also written to the meter's Redis,
which every process reads every FOLLOW_SECONDS off the request path (`follow`): a route found failing by
one process is tried last by all of them within a second, instead of each paying its timeout three times
first. A cooldown learned so ends when any process sees the route answer, or after its end, when the
process that began it has probed the route (it says so through Redis) or has not within
PROBE_GRACE_SECONDS: one probe for all, not one a process.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from core.hot_settings import hot
from gateway import metrics
from gateway.metering.redis_meter import REDIS_FAILURES, loop_client
from gateway.upstreams.base import RouteInfo, UpstreamError

logger = logging.getLogger(__name__)

FAILURES_TO_COOL = 3
COOLDOWN_SECONDS = 30.0
# How often each process reads the cooldowns other processes wrote (one script call, off the request path).
FOLLOW_SECONDS = 1.0
# A cooldown learned from another process, once over, stays this much longer before this process probes the
# route itself: the process that began it probes it, and says so through Redis within FOLLOW_SECONDS, so one
# request waits out a silent provider's timeout, not one in every process.
PROBE_GRACE_SECONDS = 5.0
# A route's entry in Redis is removed this long after its cooldown ended or it answered again: every process
# has read it by then.
FORGET_SECONDS = 60.0
FAILURE_LOG_SECONDS = 10.0
# The cooldowns' hash in the meter's Redis (one key: one cluster slot; a process reads it whole).
COOLDOWNS = "hi:rc"

RouteKey = tuple[str, str]


def _key(route: RouteInfo) -> RouteKey:
    return route.provider.slug, route.upstream_model_id


def _field(key: RouteKey) -> str:
    return f"{key[0]}\n{key[1]}"  # a provider's slug has no line break


class RouteHealth:
    def __init__(self) -> None:
        self._failures: dict[RouteKey, int] = {}  # failures in a row, of the routes that have any
        self._cooling_until: dict[RouteKey, float] = {}  # monotonic; past it, one request may try the route
        # Cooling because another process found them failing: whether this process has waited
        # PROBE_GRACE_SECONDS past that cooldown's end already.
        self._learned: dict[RouteKey, bool] = {}
        self._announcing: set[asyncio.Task[None]] = set()  # writes to Redis under way
        self._published: set[RouteKey] = set()  # the routes the metrics were last told are cooling
        self._failure_logged = -FAILURE_LOG_SECONDS

    def in_order(self, routes: Sequence[RouteInfo]) -> Sequence[RouteInfo]:
        """The routes to try, in order: those cooling after the others. A route whose cooldown is over
        keeps its place for this request, its probe, and stays last for the others (in every process) until
        the probe ends; a cooldown learned from another process is that one's to probe first."""
        cooling_until = self._cooling_until
        if not cooling_until or len(routes) < 2:  # nothing cooling, or nothing to try instead
            return routes
        now = time.monotonic()
        ready: list[RouteInfo] = []
        cooling: list[RouteInfo] = []
        for route in routes:
            key = _key(route)
            until = cooling_until.get(key)
            if until is None:
                ready.append(route)
            elif now < until:
                cooling.append(route)
            elif self._learned.get(key) is False:  # the process that began it probes it first
                self._learned[key] = True
                cooling_until[key] = now + PROBE_GRACE_SECONDS
                cooling.append(route)
            else:  # this request probes it; the others meanwhile try it last, for as long as it may take
                probing = max(COOLDOWN_SECONDS, route.provider.timeout_seconds + FOLLOW_SECONDS)
                cooling_until[key] = now + probing
                self._announce("route_cool", key, round(probing * 1000))
                ready.append(route)
        return routes if not cooling else ready + cooling

    def failed(self, route: RouteInfo, error: UpstreamError) -> None:
        """The route failed before its first event with a retryable error (the provider's, not the
        request's). A route cooling already (its probe failed) cools again at once."""
        key = _key(route)
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        if failures < FAILURES_TO_COOL and key not in self._cooling_until:
            return
        if key not in self._cooling_until:
            logger.warning(
                "route %s/%s failed %d times in a row (%s); tried after the others for %g s",
                *key, failures, error.code.value, COOLDOWN_SECONDS,
            )  # fmt: skip
            metrics.route_cooling(*key)
        self._cooling_until[key] = time.monotonic() + COOLDOWN_SECONDS
        self._learned.pop(key, None)
        self._announce("route_cool", key, round(COOLDOWN_SECONDS * 1000))

    def answered(self, route: RouteInfo) -> None:
        if not self._failures and not self._cooling_until:  # the usual case, two dicts' truth
            return
        key = _key(route)
        self._failures.pop(key, None)
        if self._cooling_until.pop(key, None) is not None:
            self._learned.pop(key, None)
            logger.warning("route %s/%s answers again", *key)
            self._announce("route_restore", key)

    def learn(self, now_ms: int, entries: dict[RouteKey, int]) -> None:
        """What the processes wrote to Redis (`entries`: each route's cooldown end in ms on Redis's clock,
        negated once it answered again; `now_ms` that clock's time): a route cooling there cools here until
        the same moment (a later end: a failed probe, or one begun); a route cooling here for that reason
        alone and answering there again is restored."""
        moment = time.monotonic()
        for key, value in entries.items():
            if value > now_ms:
                until = moment + (value - now_ms) / 1000
                if key not in self._cooling_until:
                    self._learned[key] = False
                    logger.info("route %s/%s: another gateway process found it failing; tried last", *key)
                if until > self._cooling_until.get(key, 0.0):
                    self._cooling_until[key] = until
                    if key in self._learned:
                        self._learned[key] = False  # its grace again, past this end
            elif value < 0 and key in self._learned:
                del self._learned[key]
                self._cooling_until.pop(key, None)
                logger.info("route %s/%s: another gateway process found it answering again", *key)

    def _announce(self, script: str, key: RouteKey, *args: int) -> None:
        """Tell the other processes (the Redis meter only: the processes share its Redis)."""
        if hot.GATEWAY_METER != "redis":
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests calling it directly): nothing to tell
            return
        task = loop.create_task(self._write(script, key, args))
        self._announcing.add(task)  # kept from the collector until done
        task.add_done_callback(self._announcing.discard)

    async def _write(self, script: str, key: RouteKey, args: tuple[int, ...]) -> None:
        _, run = loop_client()
        await self._calling_redis(getattr(run, script)(keys=[COOLDOWNS], args=[_field(key), *args]))

    async def read_shared(self) -> None:
        """Learn the cooldowns every process wrote to Redis (one script call)."""
        _, run = loop_client()
        found = await self._calling_redis(
            run.route_read(keys=[COOLDOWNS], args=[round(FORGET_SECONDS * 1000)])
        )
        if found is None:
            return
        now_ms, pairs = int(found[0]), found[1:]
        entries = {}
        for field, value in zip(pairs[::2], pairs[1::2], strict=True):
            provider, _, model = (field.decode() if isinstance(field, bytes) else field).partition("\n")
            entries[provider, model] = int(value)
        self.learn(now_ms, entries)

    async def _calling_redis(self, call: Coroutine[Any, Any, Any]) -> Any:
        """The call's answer, or None if Redis failed (logged every FAILURE_LOG_SECONDS at most): the
        cooldowns then are each process's own, as without Redis."""
        try:
            return await call
        except REDIS_FAILURES as exc:
            now = time.monotonic()
            if now - self._failure_logged >= FAILURE_LOG_SECONDS:
                self._failure_logged = now
                logger.warning(
                    "route cooldowns: Redis failed (%s); each process keeps its own meanwhile", exc
                )
            return None

    async def follow(self) -> None:
        """Read the shared cooldowns every FOLLOW_SECONDS, for ever (cancel it to stop)."""
        while True:
            try:
                await self.read_shared()
            except Exception:  # a bug must not end the following: logged, and tried again
                logger.exception("reading the shared route cooldowns failed")
            await asyncio.sleep(FOLLOW_SECONDS)

    def publish_cooling(self) -> None:
        """The metrics' publisher thread, every second: which routes this process tries last now (a copy of
        the dict the loop changes, taken in one step)."""
        now = time.monotonic()
        cooling = {key for key, until in list(self._cooling_until.items()) if now < until}
        for key in self._published - cooling:
            metrics.route_cooling_now(*key, cooling=False)
        for key in cooling:
            metrics.route_cooling_now(*key, cooling=True)
        self._published = cooling

    def forget(self) -> None:
        """As if no route had failed (tests)."""
        self._failures.clear()
        self._cooling_until.clear()
        self._learned.clear()


route_health = RouteHealth()
metrics.sample_each_publish(route_health.publish_cooling)
_following: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def start_following() -> None:
    """With the Redis meter, this event loop (the process's) follows the cooldowns others write; the server's
    startup calls it."""
    loop = asyncio.get_running_loop()
    if hot.GATEWAY_METER == "redis" and loop not in _following:
        task = _following[loop] = loop.create_task(route_health.follow())
        task.add_done_callback(lambda _: _following.pop(loop, None))


async def stop_following() -> None:
    task = _following.get(asyncio.get_running_loop())
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

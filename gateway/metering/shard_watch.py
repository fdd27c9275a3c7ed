"""Which shards of the meter's Redis Cluster have stopped answering, for the hot path's scripts (ADR 0017).

On one Redis the scripts' pipelined connection finds a silent Redis out itself (resp.py). On a cluster,
redis-py's client takes a pooled connection to the node of each call's keys, and a call to a node that
stops answering without refusing (a partition, a stuck server) waits out the socket timeout (5 s): so did
every request of every workspace on that node. Here, per shard (a hash tag, whose keys live on one node):
once its calls have been under way STALL_SECONDS with none of them answered, or after one failed to reach
the node, calls on the shard fail at once with RedisNotAnswering, but for one at a time, at most every
PROBE_SECONDS, that tries. The other shards, on the nodes that answer, are not touched.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import exceptions

from gateway.metering import resp
from gateway.metering.resp import RedisNotAnswering

logger = logging.getLogger(__name__)

Key = str | bytes


def shard_tag(key: Key) -> str:
    """The hash tag a meter key begins with (`hi:m:{s7}:ws:…` → `{s7}`): its shard, and its node's."""
    text = key.decode() if isinstance(key, bytes) else key
    start = text.find("{")
    return text[start : text.index("}", start) + 1] if start >= 0 else text


class ShardWatch:
    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}  # calls under way on the shard
        self.quiet_since: dict[str, float] = {}  # with calls under way: since when none has answered
        self.down_until: dict[str, float] = {}  # shards known not answering: until then, calls fail at once
        self.probing: set[str] = set()

    async def run(self, shard: str, call: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        until = self.down_until.get(shard)
        probe = until is not None
        if until is not None:
            if now < until or shard in self.probing:
                raise RedisNotAnswering(f"Redis (shard {shard}) did not answer a moment ago")
            self.probing.add(shard)
        elif self.in_flight.get(shard) and now - self.quiet_since[shard] >= resp.STALL_SECONDS:
            self._went_down(shard, now, f"has not answered for {resp.STALL_SECONDS:g} s")
            raise RedisNotAnswering(f"Redis (shard {shard}) has not answered for {resp.STALL_SECONDS:g} s")
        if not self.in_flight.get(shard):
            self.quiet_since[shard] = now
        self.in_flight[shard] = self.in_flight.get(shard, 0) + 1
        try:
            result = await call()
        except (exceptions.TimeoutError, exceptions.ConnectionError) as exc:
            self._went_down(shard, time.monotonic(), f"does not answer ({exc})")
            raise
        finally:
            self.in_flight[shard] = self.in_flight.get(shard, 1) - 1
            if probe:
                self.probing.discard(shard)
        self.quiet_since[shard] = time.monotonic()
        if probe:
            del self.down_until[shard]
            logger.warning("Redis (shard %s) answers again", shard)
        return result

    def forget(self) -> None:
        """As if every shard answered (tests)."""
        self.in_flight.clear()
        self.quiet_since.clear()
        self.down_until.clear()
        self.probing.clear()

    def _went_down(self, shard: str, now: float, why: str) -> None:
        if shard not in self.down_until:
            logger.warning("Redis (shard %s) %s: calls on it refused until it does", shard, why)
        self.down_until[shard] = now + resp.PROBE_SECONDS


class WatchedScript:
    """A cluster client's script (redis-py's, its calls on pooled connections), called through a ShardWatch
    keyed by its first key's shard."""

    def __init__(self, script: Callable[..., Awaitable[Any]], watch: ShardWatch) -> None:
        self.script, self.watch = script, watch

    async def __call__(self, *, keys: Sequence[Key], args: Sequence[Any]) -> Any:
        return await self.watch.run(shard_tag(keys[0]), lambda: self.script(keys=keys, args=args))

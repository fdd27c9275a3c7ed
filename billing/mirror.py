"""The Redis mirror of credit accounts and key limits that the production hot path reserves against.

PostgreSQL stays the book of record. Redis holds, per workspace, a mirror of its balance with the holds
of requests in flight and the debits not yet written to PostgreSQL ("unflushed"), so a request is
admitted and settled by one atomic script each, without touching PostgreSQL (design §4). The gateway's
metering (gateway/metering/redis_meter.py) runs the scripts and writes PostgreSQL in batches.

Every name carries its shard's hash tag, `hi:m:{s<n>}:`, so that each script's keys share one slot of a
Redis Cluster (ADR 0017). A workspace's shard is a stable hash of its id; everything of the workspace —
its hash, its keys' hashes, its requests' holds, done markers, generation copies and rate counters — is in
that shard, and each shard has its own queue, holds zset, in-flight batches and dead letters.

Hash `<shard>ws:<workspace>`:
    bal       mirrored balance: PostgreSQL's balance minus unflushed debits (absent until loaded)
    held      worst cases held by requests in flight
    unfl      debits settled in Redis and not yet written to PostgreSQL
    flushing  batches being written to PostgreSQL right now; the mirror is not (re)loaded meanwhile
    ver       bumped by every write to PostgreSQL; a load that saw another version is retried
Hash `<shard>key:<api key id>`: used (in the current limit period, unflushed included), held, period,
    unfl:<period>, flushing, ver — the same for a key's credit limit.

Any other change of a balance (a purchase, a grant, an adjustment) drops `bal` after its commit, and the
next request loads it again from PostgreSQL. Redis must not evict these keys (maxmemory-policy
noeviction) and should persist them (appendonly): see docs/adr/0006-redis-hot-path.md.
"""

import logging
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, TypeVar, cast

from django.conf import settings
from django.db import transaction

from core.hot_settings import hot

if TYPE_CHECKING:
    import redis
    import redis.cluster

    SyncClient = redis.Redis | redis.cluster.RedisCluster

logger = logging.getLogger(__name__)

PREFIX = "hi:m:"
WorkspaceId = uuid.UUID | str  # the writer names a workspace by the id as its records carry it, a string


def shard_count() -> int:
    return hot.METER_REDIS_SHARDS


def shards() -> range:
    return range(shard_count())


def shard_of(workspace_id: WorkspaceId) -> int:
    """A stable hash of the workspace's id (the same in every process), modulo the number of shards."""
    return names(workspace_id).shard


def shard_prefix(shard: int) -> str:
    """`hi:m:{s7}:`: the hash tag puts every name of the shard in one cluster slot."""
    return f"{PREFIX}{{s{shard}}}:"


# Each shard's own lists and sets.
def holds(shard: int) -> str:
    """zset: request id -> when its hold expires (epoch seconds)."""
    return shard_prefix(shard) + "holds"


def queue(shard: int) -> str:
    """list: settled records waiting to be written to PostgreSQL."""
    return shard_prefix(shard) + "q"


def inflights(shard: int) -> str:
    """zset: writer batch token -> when it was claimed."""
    return shard_prefix(shard) + "inflights"


def inflight_list(shard: int, token: str) -> str:
    """list: the records of one writer's batch while it writes them."""
    return shard_prefix(shard) + f"inflight:{token}"


def dead(shard: int) -> str:
    """list: records PostgreSQL refused; `manage.py metering_requeue_dead` retries them."""
    return shard_prefix(shard) + "dead"


@dataclass(frozen=True, slots=True)
class WorkspaceNames:
    """A workspace's names, all in its shard. Made once per workspace and kept (`names`): a request names
    a dozen, and each would otherwise hash the id and write it out again (~2 µs a name)."""

    text: str  # the workspace's id as text, as the scripts and the records carry it
    shard: int
    prefix: str
    workspace_hash: str
    holds: str  # the shard's holds
    queue: str  # the shard's queue

    def key_hash(self, api_key_id: int | str | None) -> str:
        """An API key's hash; `key:-` stands in when the caller has no key."""
        return self.prefix + ("key:-" if api_key_id is None else f"key:{api_key_id}")

    def hold_hash(self, request_id: str) -> str:
        return f"{self.prefix}hold:{request_id}"

    def done_marker(self, request_id: str) -> str:
        return f"{self.prefix}done:{request_id}"

    def generation_json(self, request_id: str) -> str:
        return f"{self.prefix}gen:{request_id}"

    def rate_counter(self, api_key_id: int | None, window: int) -> str:
        return f"{self.prefix}rl:{api_key_id}:{window}"


def names(workspace_id: WorkspaceId) -> WorkspaceNames:
    return _names(workspace_id, shard_count())


@lru_cache(maxsize=16_384)  # ~0.6 KB a workspace: at most ~10 MB a process; a miss costs ~3 µs
def _names(workspace_id: WorkspaceId, count: int) -> WorkspaceNames:
    text = str(workspace_id)
    shard = zlib.crc32(text.encode()) % count
    prefix = shard_prefix(shard)
    return WorkspaceNames(text, shard, prefix, f"{prefix}ws:{text}", holds(shard), queue(shard))


def workspace_hash(workspace_id: WorkspaceId) -> str:
    return names(workspace_id).workspace_hash


def key_hash(workspace_id: WorkspaceId, api_key_id: int | str | None) -> str:
    return names(workspace_id).key_hash(api_key_id)


def hold_hash(workspace_id: WorkspaceId, request_id: str) -> str:
    return names(workspace_id).hold_hash(request_id)


def done_marker(workspace_id: WorkspaceId, request_id: str) -> str:
    return names(workspace_id).done_marker(request_id)


def generation_json(workspace_id: WorkspaceId, request_id: str) -> str:
    return names(workspace_id).generation_json(request_id)


def rate_counter(workspace_id: WorkspaceId, api_key_id: int | None, window: int) -> str:
    return names(workspace_id).rate_counter(api_key_id, window)


def mirror_enabled() -> bool:
    return settings.GATEWAY_METER == "redis"


def meter_redis_url() -> str:
    """The meter's Redis: METER_REDIS_URL, else REDIS_URL (read at each use, so tests can point it)."""
    return settings.METER_REDIS_URL or settings.REDIS_URL


@cache
def sync_client() -> "SyncClient":
    """A blocking client for code outside the event loop (billing services, Celery, selectors): a
    RedisCluster with METER_REDIS_CLUSTER, else a Redis.

    It does not decode responses: replies are bytes (redis-py types them `bytes | str` either way)."""
    import redis
    import redis.cluster

    options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if settings.METER_REDIS_CLUSTER:
        return redis.cluster.RedisCluster.from_url(meter_redis_url(), **options)
    return redis.Redis.from_url(meter_redis_url(), **options)


def queued_records() -> int:
    """Settled records waiting for a writer, in every shard's queue (one pipelined round)."""
    pipe = sync_client().pipeline(transaction=False)
    for shard in shards():
        pipe.llen(queue(shard))
    return sum(int(length) for length in pipe.execute())


def account_invalidate_on_commit(workspace_id: uuid.UUID) -> None:
    """After a balance changes outside the hot path, drop the mirrored balance so it is loaded again."""
    if mirror_enabled():
        transaction.on_commit(lambda: _drop_balance(workspace_id))


def key_invalidate_on_commit(workspace_id: uuid.UUID, api_key_id: int) -> None:
    """After a key's limit period is restarted, drop its mirrored usage so it is loaded again."""
    if mirror_enabled():
        transaction.on_commit(lambda: drop(key_hash(workspace_id, api_key_id), "used"))


def _drop_balance(workspace_id: uuid.UUID) -> None:
    drop(workspace_hash(workspace_id), "bal")


def drop(name: str, field: str) -> None:
    """Forget a mirrored figure (and bump the version, so a load in progress reads again)."""
    try:
        pipe = sync_client().pipeline(transaction=True)
        pipe.hdel(name, field)
        pipe.hincrby(name, "ver", 1)
        pipe.execute()
    except Exception:
        # The mirror keeps the old figure until it is dropped again; say so loudly.
        logger.exception("could not refresh the credit mirror %s", name)


T = TypeVar("T")
# How long a reader waits for a flush to finish before it settles for a figure that may count a debit twice.
CONSISTENT_READ_TRIES = 50
CONSISTENT_READ_PAUSE_SECONDS = 0.01


def with_pending(name: str, read_postgres: Callable[[], T]) -> tuple[T, dict[bytes, bytes]]:
    """PostgreSQL's figures and the mirror hash `name` as of one moment, for display.

    A writer commits a batch to PostgreSQL, then takes its costs off the hash's unflushed figures, so a reader
    between the two would count those debits twice. The hash says when that can happen (CLAIM and COMPLETE in
    gateway/metering/scripts.py): `flushing` while a batch is between them, `ver` bumped after. PostgreSQL is
    read only with no flush under way, and taken only if none started or ended meanwhile (a seqlock)."""
    if not mirror_enabled():
        return read_postgres(), {}
    client = sync_client()
    try:
        for _ in range(CONSISTENT_READ_TRIES):
            before = cast("dict[bytes, bytes]", client.hgetall(name))
            if int(before.get(b"flushing", 0)) == 0:
                figures = read_postgres()
                flushing, version = client.hmget(name, "flushing", "ver")
                if int(flushing or 0) == 0 and (version or b"0") == before.get(b"ver", b"0"):
                    return figures, before
            time.sleep(CONSISTENT_READ_PAUSE_SECONDS)
        logger.warning("the credit mirror %s kept flushing: its figures may count a debit twice", name)
        return read_postgres(), cast("dict[bytes, bytes]", client.hgetall(name))
    except Exception:
        logger.exception("could not read the credit mirror %s", name)
        return read_postgres(), {}


def account_pending(fields: dict[bytes, bytes]) -> tuple[int, int]:
    """(debits not yet in PostgreSQL, held by requests in flight), from a workspace's mirror hash."""
    return int(fields.get(b"unfl", 0)), int(fields.get(b"held", 0))


def key_pending(fields: dict[bytes, bytes], period: str) -> tuple[int, int, int]:
    """(charges not yet in PostgreSQL, those of them in the limit period `period`, held by requests in
    flight), from an API key's mirror hash."""
    unflushed = {name.decode(): int(value) for name, value in fields.items() if name.startswith(b"unfl:")}
    return sum(unflushed.values()), unflushed.get(f"unfl:{period}", 0), int(fields.get(b"held", 0))

"""The Redis meter (production): one atomic script to admit a request, one to settle it; PostgreSQL is
written in batches off the request path by gateway/metering/writer.py (design §4, ADR 0006).

Admission checks the key's rate limit, holds the worst case against the workspace's mirrored balance and
the key's limit, and records the hold with an expiry for the reaper. Settlement releases the hold, debits
the actual cost, queues the record for PostgreSQL and keeps a copy for /api/v1/generation, exactly once
per request id. A mirror that is not in Redis yet is loaded from PostgreSQL first.
"""

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import redis.asyncio.cluster
from django.conf import settings
from redis.exceptions import RedisClusterException, RedisError

from billing import mirror
from billing.selectors import account_balance, key_used_in_period
from core.encoding import compact_json
from core.errors import ApiError, ErrorCode
from core.hot_settings import hot
from gateway.auth import Caller
from gateway.catalog_cache import ModelInfo
from gateway.metering import scripts
from gateway.metering.base import Settlement, charge_for, generation_record, limit_period, worst_case
from gateway.metering.batching import ScriptBatcher
from gateway.metering.records import generation_data, generation_from_json
from gateway.metering.resp import RedisNotAnswering, RespConnection
from gateway.metering.shard_watch import ShardWatch, WatchedScript
from gateway.metering.sql import GENERATION_WAIT_SECONDS, find_generation
from gateway.outage import attempted, in_thread_within
from gateway.ratelimit import rate_limited

logger = logging.getLogger(__name__)

# A settlement replayed within the hour changes nothing here. A later replay (a Celery retry after a long
# outage) is still billed once: the writer skips its record and has the mirror reloaded from PostgreSQL.
DONE_TTL_SECONDS = 3600
# /api/v1/generation reads this copy until a writer has put the row in PostgreSQL (normally within a second);
# short, because it is kept for every request.
GENERATION_TTL_SECONDS = 300
HELD_CHUNK = 1000  # done markers a HELD script looks at: a few ms of Redis at most
LOAD_ATTEMPTS = 50
UNAVAILABLE = "The credit service is unavailable; retry the request shortly."

_REFUSALS = {
    "insufficient": (
        ErrorCode.INSUFFICIENT_CREDITS,
        "Insufficient credits for this request's worst case; top up, or lower max_tokens.",
    ),
    "key_limit": (ErrorCode.KEY_LIMIT_EXCEEDED, "This key's credit limit is reached."),
}


# A Redis Cluster with METER_REDIS_CLUSTER (ADR 0017), else one Redis: the commands used here are the same.
AsyncClient = aioredis.Redis | redis.asyncio.cluster.RedisCluster


def _batched(
    client: AsyncClient, connection: RespConnection | None, source: str, *, lazy: bool = False
) -> ScriptBatcher | WatchedScript:
    """A script batched with the calls of requests in flight beside it (batching.py) on one Redis's
    pipelined connection; `lazy`, its calls may wait a moment for the next one's write (resp.py). On a
    cluster each call goes alone (a batch's keys would belong to many nodes), watched for a node that
    stops answering (shard_watch.py)."""
    if connection is None:
        return WatchedScript(client.register_script(source), _shard_watch)
    return ScriptBatcher(connection, source, lazy=lazy)


_shard_watch = ShardWatch()  # the process's: a node found silent by one loop's calls is so for all


class Scripts:
    """The scripts registered on one client; redis-py runs them by SHA and reloads them if Redis forgot
    (on a cluster, on the node that owns the script's first key)."""

    def __init__(self, client: AsyncClient, connection: RespConnection | None = None) -> None:
        self.connection = connection  # the hot path's scripts' own connection (one Redis, not a cluster)
        self.reserve = _batched(client, connection, scripts.RESERVE)
        self.settle = _batched(client, connection, scripts.SETTLE, lazy=True)  # the client has its answer
        # What a request may call besides: on the same connection, so a Redis that stopped answering refuses
        # them at once too (resp.py; shard_watch.py on a cluster), not after each one's 5 s timeout.
        self.version = _batched(client, connection, scripts.VERSION)
        self.load_workspace = _batched(client, connection, scripts.LOAD_WORKSPACE)
        self.load_key = _batched(client, connection, scripts.LOAD_KEY)
        self.count = _batched(client, connection, scripts.COUNT)
        self.lookup = _batched(client, connection, scripts.LOOKUP)
        # A provider's slots shared by every gateway process (gateway/provider_slots.py)
        self.slot_take = _batched(client, connection, scripts.SLOT_TAKE)
        self.slot_give_back = _batched(client, connection, scripts.SLOT_GIVE_BACK)
        self.slot_renew = _batched(client, connection, scripts.SLOT_RENEW)
        # Route cooldowns shared by every gateway process (gateway/route_health.py)
        self.route_cool = _batched(client, connection, scripts.ROUTE_COOL)
        self.route_restore = _batched(client, connection, scripts.ROUTE_RESTORE)
        self.route_read = _batched(client, connection, scripts.ROUTE_READ)
        self.claim = client.register_script(scripts.CLAIM)
        self.complete = client.register_script(scripts.COMPLETE)
        self.requeue = client.register_script(scripts.REQUEUE)
        self.reap = client.register_script(scripts.REAP)
        self.held = client.register_script(scripts.HELD)
        self.renew = client.register_script(scripts.RENEW)


# What a call to the meter's Redis raises when Redis fails (a refused or lost connection, a timeout, a
# cluster that cannot route): the callers that go on without Redis catch these.
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)

_loop_clients: dict[asyncio.AbstractEventLoop, tuple[AsyncClient, Scripts]] = {}


class _MeterCluster(redis.asyncio.cluster.RedisCluster):
    """A cluster client that learns the cluster's layout before its first command runs.

    redis-py (8.1) lets the first commands of a new client, when many start at once (a gateway's first
    requests), each go through its own retry path around the initialization; some then write to
    connections the initialization closed, and fail with an AttributeError, not a Redis error (reproduced
    with 40 concurrent reservations, tests/gateway/test_redis_meter.py). Initializing first, under the
    client's lock, leaves them nothing to race on."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def _new_client() -> AsyncClient:
    url = mirror.meter_redis_url()
    if settings.METER_REDIS_CLUSTER:  # up to max_connections to each node
        return _MeterCluster.from_url(url, socket_timeout=5, socket_connect_timeout=2, max_connections=256)
    return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, max_connections=256)


def _new_connection() -> RespConnection:
    return RespConnection(mirror.meter_redis_url(), timeout=5, connect_timeout=2)


def loop_client() -> tuple[AsyncClient, Scripts]:
    """One pooled asyncio client per event loop (per process in production)."""
    loop = asyncio.get_running_loop()
    found = _loop_clients.get(loop)
    if found is None:
        client = _new_client()
        connection = None if settings.METER_REDIS_CLUSTER else _new_connection()
        found = _loop_clients[loop] = (client, Scripts(client, connection))
    return found


async def close_loop_client() -> None:
    found = _loop_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        client, run = found
        if run.connection is not None:
            run.connection.close()
        await client.aclose()


async def _load(
    script: ScriptBatcher | WatchedScript, name: str, read_postgres: Callable[[], int], *args: str
) -> None:
    """Mirror a PostgreSQL figure into Redis, retrying while a batch write could make the read stale."""
    _, run = loop_client()
    for _ in range(LOAD_ATTEMPTS):
        version = await run.version(keys=[name], args=()) or b"0"
        figure = await in_thread_within(attempted, read_postgres)  # PostgreSQL known down: fails at once
        if await script(keys=[name], args=[figure, *args, version]):
            return
        await asyncio.sleep(0.01)
    raise ApiError(ErrorCode.INTERNAL_ERROR, "The credit mirror is busy; retry the request.")


def _by_shard(pairs: list[tuple[str, str]]) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(workspace id, request id) pairs by their workspace's shard, HELD_CHUNK at a time: one script each."""
    by_shard: dict[int, list[tuple[str, str]]] = {}
    for pair in pairs:
        by_shard.setdefault(mirror.shard_of(pair[0]), []).append(pair)
    for shard, shard_pairs in by_shard.items():
        for start in range(0, len(shard_pairs), HELD_CHUNK):
            yield shard, shard_pairs[start : start + HELD_CHUNK]


def _unavailable(exc: aioredis.RedisError, doing: str) -> ApiError:
    """What a request gets when Redis failed it: the failure logged (one that stopped answering is logged
    once, by its connection), the client told to retry."""
    if not isinstance(exc, RedisNotAnswering):
        logger.error("%s in Redis failed", doing, exc_info=exc)
    return ApiError(ErrorCode.INTERNAL_ERROR, UNAVAILABLE)


class RedisMeter:
    durable = False  # Redis holds a settled record until a writer puts it in PostgreSQL

    async def reserve(
        self,
        *,
        caller: Caller,
        model: ModelInfo,
        request_id: str,
        prompt_tokens: int,
        max_tokens: int | None,
        extra_micro_usd: int = 0,
    ) -> int:
        amount = worst_case(model, prompt_tokens, max_tokens, extra_micro_usd)
        try:
            return await self._reserve(caller, request_id, amount)
        except aioredis.RedisError as exc:
            raise _unavailable(exc, f"reserving {request_id}") from exc

    async def _reserve(self, caller: Caller, request_id: str, amount: int) -> int:
        _, run = loop_client()
        now = time.time()
        # datetime's, not django.utils.timezone.now(): the same aware UTC time (USE_TZ), without reading the
        # setting through Django's lazy settings object twice a request.
        period = limit_period(caller, datetime.now(UTC))
        workspace = mirror.names(caller.workspace_text)
        keys = [  # all in the workspace's shard: one cluster slot
            workspace.workspace_hash,
            workspace.key_hash(caller.api_key_id),
            workspace.hold_hash(request_id),
            workspace.holds,
            workspace.rate_counter(caller.api_key_id, int(now // 60)),
        ]
        limit = caller.limit_micro_usd if caller.api_key_id is not None else None
        args: list[str | int] = [
            amount,
            request_id,
            "" if limit is None else limit,
            period,
            int(now + hot.RESERVATION_TTL_SECONDS),
            workspace.text,
            "" if caller.api_key_id is None else caller.api_key_id,
            caller.rate_limit_rpm if caller.rate_limit_rpm and caller.api_key_id is not None else "",
        ]
        for _ in range(3):
            verdict = (await run.reserve(keys=keys, args=args)).decode()
            if verdict == "ok":
                return amount
            if verdict == "load_workspace":
                await _load(
                    run.load_workspace, keys[0], lambda: account_balance(workspace_id=caller.workspace_id)
                )
            elif verdict == "load_key" and caller.api_key_id is not None:  # only a key has a key mirror
                read_used = functools.partial(
                    key_used_in_period, api_key_id=caller.api_key_id, reset=caller.limit_reset
                )
                await _load(run.load_key, keys[1], read_used, period)
            elif verdict == "rate_limited":
                raise rate_limited(caller.rate_limit_rpm or 0, now=now)
            else:
                raise ApiError(*_REFUSALS[verdict])
        raise ApiError(ErrorCode.INTERNAL_ERROR, "Could not reserve credits; retry the request.")

    async def count_free_request(self, *, caller: Caller) -> None:
        if not caller.rate_limit_rpm or caller.api_key_id is None:
            return
        _, run = loop_client()
        now = time.time()
        # the reserve script's counter, of a one-minute window: it outlives the window, then goes
        counter = mirror.rate_counter(caller.workspace_id, caller.api_key_id, int(now // 60))
        try:
            count = await run.count(keys=[counter], args=[120])
        except aioredis.RedisError as exc:
            raise _unavailable(exc, "counting a free request") from exc
        if count > caller.rate_limit_rpm:
            raise rate_limited(caller.rate_limit_rpm, now=now)

    async def settle(self, settlement: Settlement) -> int:
        cost = charge_for(settlement)
        finished = datetime.now(UTC)
        caller, request_id = settlement.caller, settlement.request_id
        period = limit_period(caller, finished)
        workspace = mirror.names(caller.workspace_text)
        record = {  # `ws` and `key` first: the writer's claim reads them off the start (scripts.py)
            "ws": workspace.text,
            "key": "" if caller.api_key_id is None else str(caller.api_key_id),
            "period": period,
            "reset": caller.limit_reset,
            "generation": generation_record(settlement, cost=cost, finished_at=finished),
        }
        _, run = loop_client()
        await run.settle(
            keys=[  # all in the workspace's shard: one cluster slot
                workspace.workspace_hash,
                workspace.key_hash(caller.api_key_id),
                workspace.hold_hash(request_id),
                workspace.holds,
                workspace.done_marker(request_id),
                workspace.generation_json(request_id),
                workspace.queue,
            ],
            args=[request_id, cost, period, compact_json(record), DONE_TTL_SECONDS, GENERATION_TTL_SECONDS],
        )
        return cost

    async def still_held(self, settlements: list[tuple[str, str]]) -> set[str]:
        """The settlements whose done marker Redis still has (kept DONE_TTL_SECONDS): queued, or in a
        writer's batch, not lost. One script a shard and HELD_CHUNK of them (`_by_shard`)."""
        _, run = loop_client()
        held: set[str] = set()
        for _, chunk in _by_shard(settlements):
            flags = await run.held(keys=[mirror.done_marker(ws, request_id) for ws, request_id in chunk])
            held.update(request_id for (_, request_id), flag in zip(chunk, flags, strict=True) if flag)
        return held

    async def renew(self, holds: list[tuple[str, str]]) -> int:
        """One script a shard and HELD_CHUNK of them (`_by_shard`)."""
        _, run = loop_client()
        expires = int(time.time() + hot.RESERVATION_TTL_SECONDS)
        renewed = 0
        for shard, chunk in _by_shard(holds):
            ids = [request_id for _, request_id in chunk]
            renewed += await run.renew(keys=[mirror.holds(shard)], args=[expires, *ids])
        return renewed

    async def generation(self, *, workspace_id: uuid.UUID, request_id: str) -> dict[str, Any] | None:
        _, run = loop_client()
        deadline = time.monotonic() + GENERATION_WAIT_SECONDS
        # Named in the asking workspace's shard: another workspace's request is not found there.
        keys = [mirror.hold_hash(workspace_id, request_id), mirror.generation_json(workspace_id, request_id)]
        while True:
            try:
                in_flight, buffered = await run.lookup(keys=keys, args=())
            except (aioredis.RedisError, RedisClusterException):  # no Redis: what PostgreSQL has
                found, _ = await in_thread_within(attempted, find_generation, workspace_id, request_id)
                return found
            if buffered is not None:
                data = json.loads(buffered)["generation"]
                if data["workspace_id"] != str(workspace_id):
                    return None
                return generation_data(generation_from_json(data))
            found, _ = await in_thread_within(attempted, find_generation, workspace_id, request_id)
            if found is not None:
                return found
            if not in_flight or time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)

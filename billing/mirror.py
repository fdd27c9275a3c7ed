"""The Redis mirror of credit accounts and key limits that the production hot path reserves against.

PostgreSQL stays the book of record. Redis holds, per workspace, a mirror of its balance with the holds
of requests in flight and the debits not yet written to PostgreSQL ("unflushed"), so a request is
admitted and settled by one atomic script each, without touching PostgreSQL (design §4). The gateway's
metering (gateway/metering/redis_meter.py) runs the scripts and writes PostgreSQL in batches.

Hash `hi:m:ws:<workspace>`:
    bal       mirrored balance: PostgreSQL's balance minus unflushed debits (absent until loaded)
    held      worst cases held by requests in flight
    unfl      debits settled in Redis and not yet written to PostgreSQL
    flushing  batches being written to PostgreSQL right now; the mirror is not (re)loaded meanwhile
    ver       bumped by every write to PostgreSQL; a load that saw another version is retried
Hash `hi:m:key:<api key id>`: used (in the current limit period, unflushed included), held, period,
    unfl:<period>, flushing, ver — the same for a key's credit limit.

Any other change of a balance (a purchase, a grant, an adjustment) drops `bal` after its commit, and the
next request loads it again from PostgreSQL. Redis must not evict these keys (maxmemory-policy
noeviction) and should persist them (appendonly): see docs/adr/0006-redis-hot-path.md.
"""

import logging
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar, cast

from django.conf import settings
from django.db import transaction

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

PREFIX = "hi:m:"
HOLDS = PREFIX + "holds"  # zset: request id -> when its hold expires (epoch seconds)
QUEUE = PREFIX + "q"  # list: settled records waiting to be written to PostgreSQL
INFLIGHTS = PREFIX + "inflights"  # zset: writer batch token -> when it was claimed
DEAD = PREFIX + "dead"  # list: records PostgreSQL refused; `manage.py metering_requeue_dead` retries them
NO_KEY = PREFIX + "key:-"  # stands in for the key hash when the caller has no API key


def workspace_hash(workspace_id: uuid.UUID | str) -> str:
    """A workspace's mirror; the writer names it by the id as its records carry it, a string."""
    return f"{PREFIX}ws:{workspace_id}"


def key_hash(api_key_id: int | None) -> str:
    return NO_KEY if api_key_id is None else f"{PREFIX}key:{api_key_id}"


def hold_hash(request_id: str) -> str:
    return f"{PREFIX}hold:{request_id}"


def done_marker(request_id: str) -> str:
    return f"{PREFIX}done:{request_id}"


def generation_json(request_id: str) -> str:
    return f"{PREFIX}gen:{request_id}"


def rate_counter(api_key_id: int | None, window: int) -> str:
    return f"{PREFIX}rl:{api_key_id}:{window}"


def inflight_list(token: str) -> str:
    return f"{PREFIX}inflight:{token}"


def mirror_enabled() -> bool:
    return settings.GATEWAY_METER == "redis"


@cache
def sync_client() -> "redis.Redis":
    """A blocking client for code outside the event loop (billing services, Celery, selectors).

    It does not decode responses: replies are bytes (redis-py types them `bytes | str` either way)."""
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def account_invalidate_on_commit(workspace_id: uuid.UUID) -> None:
    """After a balance changes outside the hot path, drop the mirrored balance so it is loaded again."""
    if mirror_enabled():
        transaction.on_commit(lambda: _drop_balance(workspace_id))


def key_invalidate_on_commit(api_key_id: int) -> None:
    """After a key's limit period is restarted, drop its mirrored usage so it is loaded again."""
    if mirror_enabled():
        transaction.on_commit(lambda: drop(key_hash(api_key_id), "used"))


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

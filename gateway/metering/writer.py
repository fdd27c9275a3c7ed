"""The Redis meter's writer: settled records go from the Redis queue to PostgreSQL in batches (design §4).

Each shard of the mirror (billing/mirror.py, ADR 0017) has its own queue. A writer learns which queues hold
records with one pipelined round of LLEN, claims from them atomically (each shard's part moved to its own
in-flight list), writes what it claimed in one PostgreSQL transaction (usage debits, key usage, generation
rows; request ids already written are skipped, so a batch written twice changes nothing), then completes
each shard's part in Redis. A writer that fails puts its batch back; one that died is noticed by its
batch's age and the batch goes back to the queue. Every gateway process runs a flusher in its event loop,
or with METER_WRITER=process `manage.py meter_writer` runs it in a process of its own (ADR 0022); Celery
beat runs `gateway.tasks.flush_metering` as the backstop.
"""

import asyncio
import contextlib
import itertools
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from billing import mirror
from core.encoding import compact_json, read_json
from core.hot_settings import hot
from core.processes import release_free_memory
from gateway.http import in_thread
from gateway.metering.batch_write import Record, Written, write_batch
from gateway.metering.redis_meter import AsyncClient, Scripts, close_loop_client, loop_client

logger = logging.getLogger(__name__)

# A batch costs ~3.7 ms of the writer's CPU whatever its size (its statements, scripts and thread hop), plus
# what each record costs: after a 0.25 s pause a busy worker's queue holds ~1,000 records, which now go in one
# batch, not two or three (19 % less of the writer's CPU a request, bench/README.md).
BATCH_SIZE = 2000
IDLE_SECONDS = 0.25  # how long an idle flusher waits before looking at the queue again
# Fewer than GATHER_BELOW records queued are left to gather for up to GATHER_SECONDS from the look that first
# found them: at a light load, a batch at every look cost the writer its ~4 ms of statements, scripts and
# thread hop for a few records (at 63 requests a second, 0.62 ms of its CPU a request; bench/README.md).
# From ~2,000 requests a second on, every look finds a batch's worth, and writes it at once as before.
GATHER_BELOW = 500
GATHER_SECONDS = 1.0
STALE_BATCH_SECONDS = 60  # a batch claimed this long ago belongs to a writer that died
MAINTENANCE_SECONDS = 5.0  # how often a flusher requeues stale batches and reaps expired holds
FINAL_DRAIN_SECONDS = 10.0  # the most a stopping writer spends writing what is queued
REAP_BATCH = 1000


def batch_accounting(records: list[Record], dead: list[Record]) -> dict[str, Any]:
    """What COMPLETE takes off the mirror's unflushed figures: every workspace and key of the batch, with
    the costs of the records that reached PostgreSQL (the dead ones stay unflushed)."""
    dead_ids = {record["generation"]["request_id"] for record in dead}
    workspaces: dict[str, int] = {}
    keys: dict[str, dict[str, int]] = {}
    for record in records:
        is_dead = record["generation"]["request_id"] in dead_ids
        cost = 0 if is_dead else record["generation"]["cost_micro_usd"]
        workspaces[record["ws"]] = workspaces.get(record["ws"], 0) + cost
        if record["key"]:
            periods = keys.setdefault(record["key"], {})
            periods[record["period"]] = periods.get(record["period"], 0) + cost
    return {"ws": workspaces, "keys": keys}


WriteBatch = Callable[[list[Record]], Awaitable["Written"]]


async def _write_in_thread(records: list[Record]) -> Written:
    return await in_thread(write_batch, records)


@dataclass(frozen=True)
class Claimed:
    """One shard's part of a batch: its records, moved to the in-flight list named by the token."""

    shard: int
    token: str
    records: list[Record]


_rotation = itertools.count()  # where the next claim starts, so that no shard waits behind the others


async def _queue_lengths(client: AsyncClient) -> list[int]:
    """How many records each shard's queue holds, in one pipelined round (on a cluster, one per node)."""
    async with client.pipeline(transaction=False) as pipe:
        for shard in mirror.shards():
            pipe.llen(mirror.queue(shard))
        return [int(length) for length in await pipe.execute()]


def _shares(lengths: list[int], batch_size: int) -> dict[int, int]:
    """How many records to claim from each shard: the queues in turn from a rotating start, up to a batch."""
    start = next(_rotation) % len(lengths)
    shares: dict[int, int] = {}
    room = batch_size
    for shard in itertools.chain(range(start, len(lengths)), range(start)):
        if room == 0:
            break
        if lengths[shard]:
            shares[shard] = min(lengths[shard], room)
            room -= shares[shard]
    return shares


async def _claim_from(run: Scripts, shard: int, size: int) -> Claimed:
    token = uuid.uuid4().hex
    items = await run.claim(
        keys=[mirror.queue(shard), mirror.inflight_list(shard, token), mirror.inflights(shard)],
        args=[size, time.time(), token],
    )
    return Claimed(shard, token, [read_json(item) for item in items])


async def _requeue(run: Scripts, claimed: list[Claimed]) -> None:
    await asyncio.gather(
        *(
            run.requeue(keys=[mirror.inflights(c.shard), mirror.queue(c.shard)], args=["token", c.token])
            for c in claimed
        )
    )


async def _complete(run: Scripts, part: Claimed, dead: list[Record]) -> bool:
    """Take the part's written costs off its shard's unflushed figures; False if it was requeued meanwhile."""
    mine = {record["generation"]["request_id"] for record in part.records}
    dead_here = [record for record in dead if record["generation"]["request_id"] in mine]
    shard = part.shard
    completed = await run.complete(
        keys=[mirror.inflight_list(shard, part.token), mirror.inflights(shard), mirror.dead(shard)],
        args=[
            part.token,
            compact_json(batch_accounting(part.records, dead_here)),
            *(compact_json(record) for record in dead_here),
        ],
    )
    return bool(completed)


class Gathering:
    """Whether what is queued is written now, or left to gather into a larger batch (GATHER_BELOW)."""

    def __init__(self) -> None:
        self.since: float | None = None  # when a look first found the records now gathering

    def due(self, queued: int, now: float) -> bool:
        if not queued:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        if queued >= GATHER_BELOW or now - self.since >= GATHER_SECONDS:
            self.since = None
            return True
        return False


async def flush_once(
    *, batch_size: int = BATCH_SIZE, write: WriteBatch = _write_in_thread, gathering: Gathering | None = None
) -> int:
    """Claim one batch (from every shard with records), write it, complete it. Returns the number of records
    claimed (0: every queue empty, or what is queued left to gather)."""
    client, run = loop_client()
    lengths = await _queue_lengths(client)
    if gathering is not None and not gathering.due(sum(lengths), time.monotonic()):
        return 0
    shares = _shares(lengths, batch_size)
    if not shares:
        return 0
    claims = await asyncio.gather(
        *(_claim_from(run, shard, size) for shard, size in shares.items()), return_exceptions=True
    )
    # another writer may have emptied a queue first
    claimed = [part for part in claims if isinstance(part, Claimed) and part.records]
    failed = [error for error in claims if isinstance(error, BaseException)]
    if failed:  # the claims that did succeed go back at once rather than when they look stale
        await _requeue(run, claimed)
        raise failed[0]
    records = [record for part in claimed for record in part.records]
    if not records:
        return 0
    try:
        written = await write(records)
    except BaseException:
        await _requeue(run, claimed)
        raise
    completed = await asyncio.gather(*(_complete(run, part, written.dead) for part in claimed))
    done_shards = {part.shard for part, done in zip(claimed, completed, strict=True) if done}
    await _reload_rewritten(client, written, done_shards)
    return len(records)


async def _reload_rewritten(client: AsyncClient, written: Written, done_shards: set[int]) -> None:
    """Drop the mirrored figures that may count a rewritten record twice, in the shards this writer
    completed (whoever writes a requeued part again does its own)."""
    names = [
        (mirror.workspace_hash(ws), "bal")
        for ws in written.rewritten_workspaces
        if mirror.shard_of(ws) in done_shards
    ] + [
        (mirror.key_hash(ws, key), "used")
        for ws, key in written.rewritten_keys
        if mirror.shard_of(ws) in done_shards
    ]
    if not names:
        return
    async with client.pipeline(transaction=False) as pipe:  # names of several shards: one slot each
        for name, field_name in names:
            pipe.hdel(name, field_name)
        await pipe.execute()


async def maintain() -> tuple[int, int]:
    """Requeue batches of writers that died; release holds of requests that never settled (every shard)."""
    _, run = loop_client()
    now = time.time()
    requeued = await asyncio.gather(
        *(
            run.requeue(keys=[mirror.inflights(s), mirror.queue(s)], args=[now - STALE_BATCH_SECONDS])
            for s in mirror.shards()
        )
    )
    reaped = await asyncio.gather(
        *(run.reap(keys=[mirror.holds(s)], args=[int(now), REAP_BATCH]) for s in mirror.shards())
    )
    total_requeued, total_reaped = sum(requeued), sum(reaped)
    if total_requeued or total_reaped:
        logger.warning(
            "metering: requeued %d records of dead writers, released %d expired holds",
            total_requeued,
            total_reaped,
        )
    return total_requeued, total_reaped


async def drain(*, write: WriteBatch = _write_in_thread) -> int:
    """Flush until the queue is empty. Returns the number of records written or skipped."""
    total = 0
    while count := await flush_once(write=write):
        total += count
    return total


_flushers: dict[asyncio.AbstractEventLoop, tuple["asyncio.Task[None]", asyncio.Event]] = {}


def loop_flusher() -> None:
    """The running event loop's writer, started once: by the ASGI lifespan (uvicorn), or by the loop's first
    request where no lifespan runs (Daphne's `runserver`), so records never wait for a beat that may not
    be there. A no-op for the SQL meter, which writes its records itself, and with METER_WRITER=process,
    where `manage.py meter_writer` writes them (`run_alone`)."""
    if hot.GATEWAY_METER != "redis" or hot.METER_WRITER != "server":
        return
    loop = asyncio.get_running_loop()
    if loop in _flushers:
        return
    stop = asyncio.Event()
    task = loop.create_task(run_flusher(stop))
    _flushers[loop] = (task, stop)
    task.add_done_callback(lambda _: _flushers.pop(loop, None))


async def stop_loop_flusher() -> None:
    """On shutdown: drain what is queued, then stop."""
    running = _flushers.get(asyncio.get_running_loop())
    if running is not None:
        task, stop = running
        stop.set()
        await task


async def run_alone() -> None:
    """`manage.py meter_writer`: the flusher in a process of its own, until SIGTERM or SIGINT; then what is
    queued is drained and the process ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_flusher(stop)
    finally:
        await close_loop_client()


async def run_flusher(stop: asyncio.Event) -> None:
    """A writer (a gateway process's, or `meter_writer`'s): flush continuously, maintain every few seconds,
    drain on stop. Once `stop` is set, the batch under way and the drain get FINAL_DRAIN_SECONDS in all: a
    PostgreSQL that does not answer would hold the stop for as long as it stays silent. A batch cut off
    mid-write goes back to its queue (`flush_once`) for the next writer, which writes it once."""
    flushing = asyncio.create_task(_flush_until(stop))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({flushing, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    try:
        await asyncio.wait_for(flushing, FINAL_DRAIN_SECONDS)
    except TimeoutError:
        logger.warning(
            "metering: the final drain took over %g s; the records left stay queued for the next writer",
            FINAL_DRAIN_SECONDS,
        )


async def _flush_until(stop: asyncio.Event) -> None:
    next_maintenance = 0.0
    backoff = IDLE_SECONDS
    backlog = False  # full batches were written one after another (after an outage, say)
    gathering = Gathering()
    while not stop.is_set():
        try:
            if time.monotonic() >= next_maintenance:
                next_maintenance = time.monotonic() + MAINTENANCE_SECONDS
                await maintain()
            if await flush_once(gathering=gathering) == BATCH_SIZE:
                backlog = True
                continue  # more is waiting
            backoff = IDLE_SECONDS
        except Exception:
            logger.exception("metering: writing a batch to PostgreSQL failed; it stays queued")
            backoff = min(backoff * 2, 5.0)
            backlog = True  # the batch's records were read and dropped
        if backlog:  # given back once it is over, not after every batch (a few ms each time)
            release_free_memory()
            backlog = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
    await _final_drain()


async def _final_drain() -> None:
    """A stopping writer drains what is queued. A batch that fails (a connection lost, a deadlock PostgreSQL
    broke) is tried again after a pause, until run_flusher's FINAL_DRAIN_SECONDS are out and it cancels
    this: one failure used to end the drain, leaving the queue to a next writer that may never start (a
    deployment scaled in). What is left then stays queued, as before."""
    pause = IDLE_SECONDS
    while True:
        try:
            await drain()
            return
        except Exception:
            logger.exception("metering: a batch of the final drain failed; trying again in %g s", pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)

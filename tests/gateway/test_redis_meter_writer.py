"""The Redis meter's batch writer (design §4, ADR 0006) on a real Redis and PostgreSQL: what it writes is the
ledger and the records the meter settled, once, through a writer that died, a write that failed and a
record PostgreSQL refuses."""

import asyncio
import itertools
import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError

from billing import mirror
from billing.models import CreditAccount, EntryKind, KeySpend, LedgerEntry, LimitReset
from billing.services import ledger_sum
from gateway.audit import ledger_audit
from gateway.canonical import Usage
from gateway.http import in_thread
from gateway.metering import cost_of, writer
from gateway.metering.records import generation_data
from gateway.metering.redis_meter import loop_client
from gateway.models import Generation
from tests.factories import make_workspace
from tests.gateway.redis_meter_support import (
    HOLD,
    MODEL,
    PROMPT_TOKENS,
    caller_for,
    key_with_limit,
    meter,
    mirrored,
    redis_meter,  # noqa: F401  (the autouse fixture)
    reserve,
    rid,
    run,
    settle,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("one_utc_day")  # a daily key limit: its day must not end mid-test
def test_after_a_flush_the_ledger_balances_and_usage_equals_the_generations():
    workspace = make_workspace(credits_micro_usd=100 * HOLD)
    key = key_with_limit(workspace, limit=100 * HOLD, reset=LimitReset.DAILY)
    caller = caller_for(workspace, key)
    tokens = [0, 1, 7, 33, 100, 55, 2, 99, 64, 18] * 3

    async def scenario():
        ids = [rid() for _ in tokens]
        await asyncio.gather(*(reserve(caller, request_id) for request_id in ids))
        statuses = ["failed" if i % 7 == 3 else "completed" for i in range(len(ids))]
        charged = await asyncio.gather(
            *(settle(caller, i, n, s) for i, n, s in zip(ids, tokens, statuses, strict=True))
        )
        # part of it written in small batches, the rest in one
        await writer.flush_once(batch_size=4)
        await writer.drain()
        return sum(charged)

    charged = run(scenario())
    assert charged > 0
    account = CreditAccount.objects.get(workspace=workspace)
    assert account.balance_micro_usd == 100 * HOLD - charged == ledger_sum(workspace_id=workspace.pk)
    usage = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    generations = Generation.objects.filter(workspace=workspace)
    assert generations.count() == len(tokens)
    assert -sum(e.amount_micro_usd for e in usage) == sum(g.cost_micro_usd for g in generations) == charged
    assert all(g.cost_micro_usd == 0 for g in generations.filter(status="failed"))
    # balance_after follows the entries in order, as if they had been posted one by one
    entries = list(usage.order_by("id"))
    for before, after in itertools.pairwise(entries):
        assert after.balance_after_micro_usd == before.balance_after_micro_usd + after.amount_micro_usd
    assert entries[-1].balance_after_micro_usd == account.balance_micro_usd
    spend = KeySpend.objects.get(api_key=key)
    assert spend.lifetime_micro_usd == spend.used_micro_usd == charged
    assert mirrored(mirror.workspace_hash(workspace.pk))["bal"] == account.balance_micro_usd
    assert mirrored(mirror.key_hash(workspace.pk, key.pk))["used"] == charged
    assert ledger_audit() == []


def test_a_batch_whose_writer_died_is_requeued_and_written_once():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller = caller_for(workspace)
    ids = [rid() for _ in range(3)]

    async def scenario():
        for request_id in ids:
            await reserve(caller, request_id)
            await settle(caller, request_id, 50)
        _, scripts = loop_client()
        # A writer claims the batch, writes it to PostgreSQL, and dies before telling Redis.
        long_ago = time.time() - writer.STALE_BATCH_SECONDS - 1
        shard = mirror.shard_of(workspace.pk)
        items = await scripts.claim(
            keys=[mirror.queue(shard), mirror.inflight_list(shard, "dead"), mirror.inflights(shard)],
            args=[10, long_ago, "dead"],
        )
        await in_thread(writer.write_batch, [json.loads(item) for item in items])
        requeued, _ = await writer.maintain()
        # Before the batch is written again, the mirror is loaded from PostgreSQL (after a grant, say):
        # PostgreSQL has the charges and Redis still counts them as unflushed.
        mirror.drop(mirror.workspace_hash(workspace.pk), "bal")
        await reserve(caller, rid())
        written = await writer.drain()
        await reserve(caller, rid())  # the rewrite dropped the doubly counted mirror: loaded again, right
        return requeued, written

    assert run(scenario()) == (3, 3)
    cost = cost_of(MODEL, Usage(PROMPT_TOKENS, 50))
    assert LedgerEntry.objects.filter(reference__in=ids).count() == 3
    assert Generation.objects.filter(request_id__in=ids).count() == 3
    balance = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    assert balance == 10 * HOLD - 3 * cost == ledger_sum(workspace_id=workspace.pk)
    state = mirrored(mirror.workspace_hash(workspace.pk))
    assert state["unfl"] == 0 and state["flushing"] == 0 and state["bal"] == balance


def test_a_failed_write_puts_the_batch_back():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, request_id = caller_for(workspace), rid()

    async def broken(records):
        raise RuntimeError("PostgreSQL is down")

    async def scenario():
        await reserve(caller, request_id)
        await settle(caller, request_id, 10)
        with pytest.raises(RuntimeError):
            await writer.flush_once(write=broken)
        assert await loop_client()[0].llen(mirror.queue(mirror.shard_of(workspace.pk))) == 1
        assert mirrored(mirror.workspace_hash(workspace.pk))["flushing"] == 0
        return await writer.drain()

    assert run(scenario()) == 1
    assert Generation.objects.filter(request_id=request_id).exists()


def test_a_stopping_writer_tries_a_failed_batch_again_rather_than_leaving_it_queued(monkeypatch):
    """The final drain of a writer told to stop (a deployment scaled in: no writer may come after it) meets
    a batch that fails once, as a deadlock PostgreSQL broke or a lost connection would: the batch is tried
    again and written, where the drain used to end at the first failure with the batch left queued."""
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, request_ids = caller_for(workspace), [rid() for _ in range(3)]
    failed: list[int] = []
    write_batch = writer.write_batch

    def fails_once(records):
        if not failed:
            failed.append(len(records))
            raise OperationalError("deadlock detected")
        return write_batch(records)

    monkeypatch.setattr(writer, "write_batch", fails_once)

    async def scenario():
        for request_id in request_ids:
            await reserve(caller, request_id)
            await settle(caller, request_id, 10)
        stop = asyncio.Event()
        stop.set()  # only the final drain runs
        await writer.run_flusher(stop)
        return await loop_client()[0].llen(mirror.queue(mirror.shard_of(workspace.pk)))

    assert run(scenario()) == 0
    assert failed == [3]
    assert Generation.objects.filter(request_id__in=request_ids).count() == 3
    assert ledger_audit() == []


def test_the_row_the_writer_writes_is_the_record_redis_served():
    """The writer hands the record's text (workspace id, times) to PostgreSQL as it is: what the API served
    from Redis before the flush, it serves from PostgreSQL after it, to the microsecond."""
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, request_id = caller_for(workspace), rid()

    async def scenario():
        await reserve(caller, request_id)
        await settle(caller, request_id, 20)
        from_redis = await meter.generation(workspace_id=workspace.pk, request_id=request_id)
        await writer.drain()
        return from_redis

    from_redis = run(scenario())
    written = Generation.objects.get(request_id=request_id)
    assert generation_data(written) == from_redis
    assert written.workspace_id == workspace.pk
    assert written.finished_at - written.created_at == timedelta(milliseconds=12)  # the outcome's latency


def test_a_record_postgresql_refuses_is_kept_aside_without_holding_back_the_others():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, good, bad = caller_for(workspace), rid(), rid()

    async def scenario():
        for request_id, tokens in ((good, 10), (bad, 20)):
            await reserve(caller, request_id)
            await settle(caller, request_id, tokens)
        # Damage one queued record the way a bug would: a value its column cannot hold.
        client, queue = mirror.sync_client(), mirror.queue(mirror.shard_of(workspace.pk))
        items = [json.loads(i) for i in client.lrange(queue, 0, -1)]
        for item in items:
            if item["generation"]["request_id"] == bad:
                item["generation"]["finish_reason"] = "x" * 500
        client.delete(queue)
        client.rpush(queue, *(json.dumps(i) for i in items))
        return await writer.drain()

    assert run(scenario()) == 2
    assert Generation.objects.filter(request_id=good).exists()
    assert not Generation.objects.filter(request_id=bad).exists()
    bad_cost = cost_of(MODEL, Usage(PROMPT_TOKENS, 20))
    # its charge stays in the mirror, unflushed, until an operator has it written
    assert mirrored(mirror.workspace_hash(workspace.pk))["unfl"] == bad_cost
    client, dead_letters = mirror.sync_client(), mirror.dead(mirror.shard_of(workspace.pk))
    assert client.llen(dead_letters) == 1

    dead = json.loads(client.lpop(dead_letters))
    dead["generation"]["finish_reason"] = "stop"  # the operator's fix
    client.rpush(dead_letters, json.dumps(dead))
    call_command("metering_requeue_dead")
    assert run(writer.drain()) == 1
    assert Generation.objects.filter(request_id=bad).exists()
    assert mirrored(mirror.workspace_hash(workspace.pk))["unfl"] == 0
    balance = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    assert (
        balance
        == ledger_sum(workspace_id=workspace.pk)
        == mirrored(mirror.workspace_hash(workspace.pk))["bal"]
    )


@pytest.mark.parametrize("shape", ["as the meter writes it", "its fields in another order"])
def test_a_claimed_batch_marks_its_workspace_and_key_as_flushing(shape):
    # The claim reads `ws` and `key` off a record's start; a record written otherwise is decoded whole.
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    key = key_with_limit(workspace, limit=10 * HOLD)
    caller, request_id = caller_for(workspace, key), rid()
    queue = mirror.queue(mirror.shard_of(workspace.pk))
    names = [mirror.workspace_hash(workspace.pk), mirror.key_hash(workspace.pk, key.pk)]
    seen_while_writing = []

    async def write_seeing_the_marks(records):
        seen_while_writing.extend(mirrored(name).get("flushing") for name in names)
        return await in_thread(writer.write_batch, records)

    async def scenario():
        await reserve(caller, request_id)
        await settle(caller, request_id, 10)
        client = loop_client()[0]
        if shape != "as the meter writes it":
            record = json.loads(await client.lindex(queue, 0))
            assert list(record)[:2] == ["ws", "key"]
            await client.lset(queue, 0, json.dumps(dict(reversed(record.items()))))
        return await writer.flush_once(write=write_seeing_the_marks)

    assert run(scenario()) == 1
    assert seen_while_writing == [1, 1]
    assert [mirrored(name)["flushing"] for name in names] == [0, 0]
    assert Generation.objects.filter(request_id=request_id).exists()


def gathered_batches(monkeypatch) -> list[int]:
    """The sizes of the batches the writer writes from now on."""
    sizes: list[int] = []
    write_batch = writer.write_batch

    def counted(records):
        sizes.append(len(records))
        return write_batch(records)

    monkeypatch.setattr(writer, "write_batch", counted)
    return sizes


async def settled(caller, count: int) -> list[str]:
    request_ids = [rid() for _ in range(count)]
    for request_id in request_ids:
        await reserve(caller, request_id)
        await settle(caller, request_id, 10)
    return request_ids


def test_at_a_light_load_records_gather_into_one_batch_for_at_most_a_second(monkeypatch):
    """A batch at every look (every 0.25 s) cost the writer its fixed ~4 ms for a record or two."""
    sizes = gathered_batches(monkeypatch)
    caller = caller_for(make_workspace(credits_micro_usd=10 * HOLD))

    async def scenario() -> tuple[int, list[str]]:
        stop = asyncio.Event()
        flusher = asyncio.create_task(writer.run_flusher(stop))
        request_ids = await settled(caller, 3)
        await asyncio.sleep(writer.GATHER_SECONDS / 2)
        request_ids += await settled(caller, 2)  # while the first three gather
        await asyncio.sleep(writer.GATHER_SECONDS / 2 - writer.IDLE_SECONDS)
        still_queued = await loop_client()[0].llen(mirror.queue(mirror.shard_of(caller.workspace_id)))
        await asyncio.sleep(3 * writer.IDLE_SECONDS)  # past the gathering, and the look that ends it
        stop.set()
        await flusher
        return still_queued, request_ids

    still_queued, request_ids = run(scenario())
    assert still_queued == 5 and sizes == [5]  # none written before its second, all then in one batch
    assert Generation.objects.filter(request_id__in=request_ids).count() == 5
    assert ledger_audit() == []


def test_a_batchs_worth_of_records_is_written_at_the_first_look(monkeypatch):
    monkeypatch.setattr(writer, "GATHER_BELOW", 4)
    sizes = gathered_batches(monkeypatch)
    caller = caller_for(make_workspace(credits_micro_usd=10 * HOLD))

    async def scenario() -> list[str]:
        request_ids = await settled(caller, 4)
        stop = asyncio.Event()
        flusher = asyncio.create_task(writer.run_flusher(stop))
        await asyncio.sleep(writer.IDLE_SECONDS)  # the first look, and its write
        while not sizes:  # the write is in a thread; the first look found the queue full
            await asyncio.sleep(0.01)
        stop.set()
        await flusher
        return request_ids

    started = time.monotonic()
    request_ids = run(scenario())
    assert time.monotonic() - started < writer.GATHER_SECONDS and sizes == [4]
    assert Generation.objects.filter(request_id__in=request_ids).count() == 4

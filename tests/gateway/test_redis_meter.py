"""The Redis meter (design §4, ADR 0006) on a real Redis and PostgreSQL: the money invariants hold with the
mirror in front of the ledger, concurrency included, and so does the batch writer's recovery."""

import asyncio
import itertools
import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing import mirror
from billing.models import CreditAccount, EntryKind, KeySpend, LedgerEntry, LimitReset
from billing.selectors import account_for
from billing.services import credits_grant, ledger_sum
from console.models import ApiKey
from console.services.keys import api_key_create
from core.errors import ApiError, ErrorCode
from gateway.audit import ledger_audit
from gateway.auth import Caller
from gateway.canonical import Usage
from gateway.catalog_cache import ModelInfo
from gateway.http import in_thread
from gateway.metering import Outcome, Settlement, cost_of, writer
from gateway.metering.base import worst_case
from gateway.metering.records import generation_data
from gateway.metering.redis_meter import RedisMeter, close_loop_client, loop_client
from gateway.models import Generation
from tests.factories import make_user, make_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MODEL = ModelInfo(
    slug="test/priced", context_length=10_000, max_output_tokens=100, prompt_price=Decimal("1"),
    completion_price=Decimal("2"), cached_prompt_price=None, features=frozenset(), routes=(),
)  # fmt: skip
PROMPT_TOKENS, MAX_TOKENS = 10, 100
HOLD = worst_case(MODEL, PROMPT_TOKENS, MAX_TOKENS)  # 10 tokens at $1/M + 100 at $2/M = 210 µUSD
meter = RedisMeter()


@pytest.fixture(autouse=True)
def redis_meter(meter_redis, transactional_db):
    """The Redis meter, on a plain Redis and on a Redis Cluster (tests/gateway/redis_cluster.py), with an
    empty queue before and after (records of other tests are not ours)."""
    run(writer.drain())
    yield
    run(writer.drain())


def run(coroutine):
    """Run in a fresh event loop, as a gateway process would, and close that loop's Redis client."""

    async def main():
        try:
            return await coroutine
        finally:
            await close_loop_client()

    return asyncio.run(main())


def caller_for(workspace, key: ApiKey | None = None, rpm: int | None = None) -> Caller:
    return Caller(
        workspace_id=workspace.pk,
        workspace_locked=False,
        api_key_id=key.pk if key else None,
        allowed_models=frozenset(),
        rate_limit_rpm=rpm,
        source="api",
        limit_micro_usd=key.limit_micro_usd if key else None,
        limit_reset=key.limit_reset if key else "none",
    )


async def reserve(caller: Caller, request_id: str) -> int:
    return await meter.reserve(
        caller=caller, model=MODEL, request_id=request_id, prompt_tokens=PROMPT_TOKENS, max_tokens=MAX_TOKENS
    )


async def settle(caller: Caller, request_id: str, completion_tokens: int, status: str = "completed") -> int:
    return await meter.settle(
        Settlement(
            request_id=request_id,
            caller=caller,
            model=MODEL,
            ingress_format="chat_completions",
            streamed=False,
            end_user=None,
            outcome=Outcome(status=status, usage=Usage(PROMPT_TOKENS, completion_tokens), latency_ms=12),
        )
    )


async def outcomes(calls) -> list[str]:
    """Run the calls concurrently: "ok" or the refusal's code for each."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return ["ok" if isinstance(r, int) else r.code.value for r in results]


def rid() -> str:
    return uuid.uuid4().hex


def mirrored(name: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in mirror.sync_client().hgetall(name).items()}


def key_with_limit(workspace, limit: int, reset: str = LimitReset.NONE) -> ApiKey:
    return api_key_create(
        workspace=workspace, name="limited", created_by=None, limit_micro_usd=limit, limit_reset=reset
    ).record


def test_concurrent_requests_never_hold_more_than_the_balance():
    workspace = make_workspace(credits_micro_usd=50 * HOLD)
    caller = caller_for(workspace)

    results = run(outcomes(reserve(caller, rid()) for _ in range(200)))

    assert results.count("ok") == 50
    assert results.count("insufficient_credits") == 150
    state = mirrored(mirror.workspace_hash(workspace.pk))
    assert state["held"] == 50 * HOLD and state["bal"] == 50 * HOLD
    assert account_for(workspace_id=workspace.pk).available_micro_usd == 0


def test_concurrent_requests_never_spend_past_a_keys_limit():
    workspace = make_workspace(credits_micro_usd=1_000 * HOLD)
    key = key_with_limit(workspace, limit=5 * HOLD)

    results = run(outcomes(reserve(caller_for(workspace, key), rid()) for _ in range(40)))

    assert results.count("ok") == 5 and results.count("key_limit_exceeded") == 35


def test_the_rate_limit_is_counted_in_redis():
    workspace = make_workspace(credits_micro_usd=100 * HOLD)
    key = api_key_create(workspace=workspace, name="slow", created_by=None, rate_limit_rpm=3).record

    results = run(outcomes(reserve(caller_for(workspace, key, rpm=3), rid()) for _ in range(5)))

    assert results.count("ok") == 3 and results.count("rate_limit_exceeded") == 2


def test_a_replayed_settlement_changes_nothing():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, request_id = caller_for(workspace), rid()

    async def scenario():
        await reserve(caller, request_id)
        # the same settlement three times, two of them at once
        await asyncio.gather(settle(caller, request_id, 40), settle(caller, request_id, 40))
        await settle(caller, request_id, 40)
        return await writer.drain()

    assert run(scenario()) == 1
    cost = cost_of(MODEL, Usage(PROMPT_TOKENS, 40))
    assert LedgerEntry.objects.get(reference=request_id).amount_micro_usd == -cost
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == 10 * HOLD - cost
    state = mirrored(mirror.workspace_hash(workspace.pk))
    assert state["held"] == 0 and state["unfl"] == 0 and state["bal"] == 10 * HOLD - cost


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


def test_holds_of_requests_that_never_settled_are_released(settings):
    workspace = make_workspace(credits_micro_usd=HOLD)
    key = key_with_limit(workspace, limit=10 * HOLD)
    caller = caller_for(workspace, key)
    settings.RESERVATION_TTL_SECONDS = -1  # already expired: the process "crashed" long ago

    async def scenario():
        await reserve(caller, rid())
        with pytest.raises(ApiError) as refused:
            await reserve(caller, rid())
        assert refused.value.code == ErrorCode.INSUFFICIENT_CREDITS
        _, reaped = await writer.maintain()
        await reserve(caller, rid())  # the credits are free again
        return reaped

    assert run(scenario()) == 1
    assert mirrored(mirror.key_hash(workspace.pk, key.pk))["held"] == HOLD


def test_a_grant_reaches_the_mirror():
    workspace = make_workspace(credits_micro_usd=HOLD)
    caller = caller_for(workspace)
    run(reserve(caller, rid()))

    credits_grant(workspace_id=workspace.pk, amount_micro_usd=HOLD, reason="top-up")

    run(reserve(caller, rid()))  # affordable only with the grant
    with pytest.raises(ApiError):
        run(reserve(caller, rid()))


def test_loading_the_mirror_while_charges_are_unflushed_counts_them_once():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller = caller_for(workspace)

    async def scenario():
        for _ in range(3):
            request_id = rid()
            await reserve(caller, request_id)
            await settle(caller, request_id, 100)
        mirror.drop(mirror.workspace_hash(workspace.pk), "bal")
        await reserve(caller, rid())  # loads: PostgreSQL's balance minus the unflushed charges
        loaded = mirrored(mirror.workspace_hash(workspace.pk))
        await writer.drain()
        return loaded

    loaded = run(scenario())
    cost = cost_of(MODEL, Usage(PROMPT_TOKENS, 100))
    assert loaded["unfl"] == 3 * cost and loaded["bal"] == 10 * HOLD - 3 * cost
    balance = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    assert balance == 10 * HOLD - 3 * cost == mirrored(mirror.workspace_hash(workspace.pk))["bal"]


def test_a_generation_is_served_from_redis_before_it_reaches_postgresql():
    workspace, stranger = make_workspace(credits_micro_usd=10 * HOLD), make_workspace(owner=make_user())
    caller, request_id = caller_for(workspace), rid()

    async def scenario():
        await reserve(caller, request_id)
        await settle(caller, request_id, 20)
        mine = await meter.generation(workspace_id=workspace.pk, request_id=request_id)
        theirs = await meter.generation(workspace_id=stranger.pk, request_id=request_id)
        return mine, theirs

    mine, theirs = run(scenario())
    assert not Generation.objects.filter(request_id=request_id).exists()
    assert mine["id"] == request_id and mine["tokens_completion"] == 20
    assert mine["cost_micro_usd"] == str(cost_of(MODEL, Usage(PROMPT_TOKENS, 20)))
    assert theirs is None
    # what the user sees already counts it
    assert account_for(workspace_id=workspace.pk).balance_micro_usd == 10 * HOLD - int(mine["cost_micro_usd"])


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


def test_a_replay_after_the_done_marker_expired_is_still_billed_once():
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    key = key_with_limit(workspace, limit=10 * HOLD)
    caller, request_id = caller_for(workspace, key), rid()

    async def scenario():
        await reserve(caller, request_id)
        await settle(caller, request_id, 30)
        await writer.drain()
        mirror.sync_client().delete(mirror.done_marker(workspace.pk, request_id))  # an hour later
        await settle(caller, request_id, 30)  # a late retry of the same settlement
        await writer.drain()
        await reserve(caller, rid())  # reloads the mirror the replay had debited twice

    run(scenario())
    cost = cost_of(MODEL, Usage(PROMPT_TOKENS, 30))
    assert LedgerEntry.objects.filter(reference=request_id).count() == 1
    balance = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    assert balance == 10 * HOLD - cost == mirrored(mirror.workspace_hash(workspace.pk))["bal"]
    assert mirrored(mirror.key_hash(workspace.pk, key.pk))["used"] == cost
    assert KeySpend.objects.get(api_key=key).lifetime_micro_usd == cost

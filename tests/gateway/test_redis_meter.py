"""The Redis meter (design §4, ADR 0006) on a real Redis and PostgreSQL: the money invariants hold with the
mirror in front of the ledger, concurrency included (the batch writer: test_redis_meter_writer.py)."""

import asyncio
import time

import pytest

from billing import mirror
from billing.models import CreditAccount, KeySpend, LedgerEntry
from billing.selectors import account_for
from billing.services import credits_grant
from console.services.keys import api_key_create
from core.errors import ApiError, ErrorCode
from gateway.canonical import Usage
from gateway.metering import cost_of, writer
from gateway.models import Generation
from tests.factories import make_user, make_workspace
from tests.gateway.redis_meter_support import (
    HOLD,
    MODEL,
    PROMPT_TOKENS,
    caller_for,
    key_with_limit,
    meter,
    mirrored,
    outcomes,
    redis_meter,  # noqa: F401  (the autouse fixture)
    reserve,
    rid,
    run,
    settle,
)
from tests.rate_windows import a_fresh_minute

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


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

    a_fresh_minute()  # the five in one window
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


def test_without_redis_a_generation_is_served_from_postgresql(settings):
    """/api/v1/generation's read while the meter's Redis is down: what the writer has put in PostgreSQL,
    at once (not a 500 after the client's timeout); a request not written yet is not found."""
    workspace = make_workspace(credits_micro_usd=10 * HOLD)
    caller, written, unwritten = caller_for(workspace), rid(), rid()

    async def settled() -> None:
        for request_id in (written, unwritten):
            await reserve(caller, request_id)
        await settle(caller, written, 20)
        await writer.drain()

    run(settled())
    urls = settings.REDIS_URL, settings.METER_REDIS_URL
    settings.METER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: connection refused
    try:
        started = time.monotonic()
        found = run(meter.generation(workspace_id=workspace.pk, request_id=written))
        missing = run(meter.generation(workspace_id=workspace.pk, request_id=unwritten))
        took = time.monotonic() - started
    finally:
        settings.REDIS_URL, settings.METER_REDIS_URL = urls
    assert found["id"] == written and found["tokens_completion"] == 20
    assert missing is None
    assert took < 3

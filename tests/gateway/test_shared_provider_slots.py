"""A provider's `max_concurrency` shared by every gateway process that meters on one Redis (SharedSlots in
gateway/provider_slots.py, ADR 0029), on a real Redis and a real Redis Cluster (`meter_redis`). Two
SharedSlots of one provider in one loop stand for two gateway processes: each has its own queue and its own
leases, and only Redis between them. (Across real deployments: tests/scaleout/test_three_deployments.py.)"""

import asyncio
import random
import time
import uuid

import pytest

from billing import mirror
from gateway import provider_slots
from gateway.provider_slots import (
    HAND_OVERS_IN_A_ROW,
    ProviderFull,
    ProviderSlots,
    SharedSlots,
    leases_name,
    slots_for,
)
from gateway.upstreams.base import ProviderInfo
from tests.gateway.redis_meter_support import run

pytestmark = [pytest.mark.redis]


def provider(limit: int, queued: int = 0, timeout: float = 5.0) -> ProviderInfo:
    slug = f"shared-{uuid.uuid4().hex[:8]}"  # leases of one test are not another's
    return ProviderInfo(
        slug, "openai_compatible", "http://x", "k", 5.0,
        max_concurrency=limit, max_queued=queued, queue_timeout_seconds=timeout,
    )  # fmt: skip


def leases_held(slug: str) -> int:
    return mirror.sync_client().zcard(leases_name(slug))


async def settled(*processes: SharedSlots) -> None:
    """Until the give-backs and renewals the processes sent have been answered."""
    while any(process.pending for process in processes):
        await asyncio.sleep(0.005)


@pytest.fixture
def short_leases(monkeypatch):
    """Leases of 0.5 s, renewed every 0.1 s: a process's death shows within a test."""
    monkeypatch.setattr(provider_slots, "LEASE_MS", 500)
    monkeypatch.setattr(provider_slots, "LEASE_SECONDS", 0.5)
    monkeypatch.setattr(provider_slots, "RENEW_SECONDS", 0.1)


def test_with_the_redis_meter_the_slots_are_shared(meter_redis):
    info = provider(2)
    assert type(slots_for(info, 2)) is SharedSlots


def test_with_the_sql_meter_they_are_the_processs_own(settings):
    settings.GATEWAY_METER = "sql"
    assert type(slots_for(provider(2), 2)) is ProviderSlots


def test_the_limit_holds_across_processes(meter_redis):
    info = provider(2)

    async def scenario() -> None:
        one, two = SharedSlots(info, 2), SharedSlots(info, 2)
        await one.take()
        await two.take()
        assert leases_held(info.slug) == 2
        with pytest.raises(ProviderFull):  # its own count is 1 of 2, but the provider has 2 under way
            await one.take()
        two.give_back()
        await settled(two)
        assert leases_held(info.slug) == 1
        await one.take()
        assert (one.under_way, two.under_way, leases_held(info.slug)) == (2, 0, 2)
        one.give_back()
        one.give_back()
        await settled(one)
        assert leases_held(info.slug) == 0

    run(scenario())


def test_a_request_waiting_in_one_process_gets_the_slot_another_gave_back(meter_redis):
    info = provider(1, queued=2)

    async def scenario() -> None:
        one, two = SharedSlots(info, 1), SharedSlots(info, 1)
        await one.take()
        waiting = asyncio.create_task(two.take())
        await asyncio.sleep(0.1)  # five asks of Redis, each refused
        assert not waiting.done() and len(two.waiting) == 1
        freed = time.monotonic()
        one.give_back()
        await asyncio.wait_for(waiting, 1)
        assert time.monotonic() - freed < 0.5  # an ask's interval (20 ms) and a round trip, not a lease
        assert (one.under_way, one.leases, two.under_way, len(two.leases)) == (0, [], 1, 1)
        assert leases_held(info.slug) == 1
        two.give_back()
        await settled(two)
        assert leases_held(info.slug) == 0

    run(scenario())


def test_within_a_process_a_slot_is_handed_to_the_first_waiting_without_going_back(meter_redis):
    info = provider(1, queued=2)

    async def scenario() -> None:
        one = SharedSlots(info, 1)
        await one.take()
        lease = one.leases[0]
        first, second = asyncio.create_task(one.take()), asyncio.create_task(one.take())
        while len(one.waiting) < 2:  # each asked Redis first, and was refused
            await asyncio.sleep(0.005)
        one.give_back()
        await asyncio.wait_for(first, 1)
        assert not second.done() and one.leases == [lease]  # the same lease, now the first waiter's
        one.give_back()
        await asyncio.wait_for(second, 1)
        one.give_back()
        await settled(one)
        assert (one.under_way, one.leases, leases_held(info.slug)) == (0, [], 0)

    run(scenario())


def test_a_request_waits_its_queue_timeout_at_most_and_leaves_the_queue(meter_redis):
    info = provider(1, queued=1, timeout=0.3)

    async def scenario() -> None:
        one, two = SharedSlots(info, 1), SharedSlots(info, 1)
        await one.take()
        started = time.monotonic()
        with pytest.raises(ProviderFull, match=r"no slot within 0\.3 s"):
            await two.take()
        assert 0.25 < time.monotonic() - started < 2.0
        assert (two.under_way, len(two.waiting), two.leases) == (0, 0, [])
        one.give_back()
        await settled(one)
        assert leases_held(info.slug) == 0

    run(scenario())


def test_a_process_that_dies_frees_its_slots_when_their_leases_lapse(meter_redis, short_leases):
    info = provider(1, queued=1)

    async def scenario() -> None:
        dead, alive = SharedSlots(info, 1), SharedSlots(info, 1)
        await dead.take()
        assert dead.renewing is not None
        dead.renewing.cancel()  # killed: it renews nothing and gives nothing back
        started = time.monotonic()
        await asyncio.wait_for(alive.take(), 3)
        assert 0.4 < time.monotonic() - started < 2.0  # the lease's 0.5 s, and an ask
        alive.give_back()
        await settled(alive)

    run(scenario())


def test_the_leases_of_calls_still_under_way_are_renewed(meter_redis, short_leases):
    info = provider(1)

    async def scenario() -> None:
        long_call, other = SharedSlots(info, 1), SharedSlots(info, 1)
        await long_call.take()
        await asyncio.sleep(1.5)  # three lease lengths
        with pytest.raises(ProviderFull):
            await other.take()
        long_call.give_back()
        await settled(long_call)
        assert leases_held(info.slug) == 0
        await other.take()
        other.give_back()
        await settled(other)

    run(scenario())


def test_a_lease_that_lapsed_is_not_brought_back_and_is_counted_by_the_process(
    meter_redis, short_leases, caplog
):
    info = provider(2)

    async def scenario() -> None:
        one = SharedSlots(info, 2)
        await one.take()
        mirror.sync_client().delete(leases_name(info.slug))  # Redis lost it (a restart without persistence)
        deadline = time.monotonic() + 2
        while one.leases:  # until a renewal (every 0.1 s) finds it gone
            assert time.monotonic() < deadline, "no renewal noticed the lost lease"
            await asyncio.sleep(0.02)
        assert one.under_way == 1
        assert leases_held(info.slug) == 0
        assert "1 slot leases had lapsed" in caplog.text
        one.give_back()  # nothing to give back in Redis
        await settled(one)
        assert (one.under_way, leases_held(info.slug)) == (0, 0)

    run(scenario())


def test_a_request_cancelled_while_it_asks_gives_back_the_lease_it_was_given(meter_redis):
    info = provider(1)

    async def scenario() -> None:
        one = SharedSlots(info, 1)
        asking = asyncio.create_task(one.take())
        await asyncio.sleep(0)  # its call is sent; Redis has not answered
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        deadline = time.monotonic() + 1
        while leases_held(info.slug) or one.pending:
            assert time.monotonic() < deadline, "the lease of a cancelled request stayed"
            await asyncio.sleep(0.01)
        assert (one.under_way, one.leases) == (0, [])

    run(scenario())


def test_a_higher_limit_from_the_catalog_lets_those_waiting_in(meter_redis):
    info = provider(1, queued=5)

    async def scenario() -> None:
        one = slots_for(info, 1)
        await one.take()
        waiting = asyncio.create_task(one.take())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert slots_for(provider_with(info, 2), 2) is one
        await asyncio.wait_for(waiting, 1)
        assert (one.limit, one.under_way, leases_held(info.slug)) == (2, 2, 2)
        one.give_back()
        one.give_back()
        await settled(one)

    run(scenario())


def provider_with(info: ProviderInfo, limit: int) -> ProviderInfo:
    return ProviderInfo(
        info.slug, info.kind, info.base_url, info.api_key, info.timeout_seconds,
        max_concurrency=limit, max_queued=info.max_queued, queue_timeout_seconds=info.queue_timeout_seconds,
    )  # fmt: skip


def test_while_redis_fails_a_process_counts_its_own_calls(settings, caplog):
    settings.GATEWAY_METER = "redis"
    settings.METER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    info = provider(2)

    async def scenario() -> None:
        one = SharedSlots(info, 2)
        await one.take()
        await one.take()
        with pytest.raises(ProviderFull):
            await one.take()
        assert (one.under_way, one.leases) == (2, [])
        one.give_back()
        one.give_back()
        await settled(one)
        assert one.under_way == 0

    run(scenario())
    assert "taking a slot in Redis failed" in caplog.text


def test_many_requests_in_two_processes_never_have_more_than_the_limit_under_way(meter_redis):
    """Sixty calls of random lengths, thirty in each process, all at once: each is served in turn, and at no
    moment are more than the limit under way between the two (hand-overs within a process, asks of Redis
    across them)."""
    info = provider(3, queued=30, timeout=20)
    rng = random.Random(18)

    async def scenario() -> None:
        processes = SharedSlots(info, 3), SharedSlots(info, 3)
        under_way, most = 0, 0

        async def call(slots: SharedSlots, seconds: float) -> None:
            nonlocal under_way, most
            await slots.take()
            under_way += 1
            most = max(most, under_way)
            await asyncio.sleep(seconds)
            under_way -= 1
            slots.give_back()

        await asyncio.gather(*(call(processes[n % 2], rng.uniform(0.005, 0.05)) for n in range(60)))
        await settled(*processes)
        assert most == 3
        assert [(slots.under_way, len(slots.waiting), slots.leases) for slots in processes] == [
            (0, 0, [])
        ] * 2
        assert leases_held(info.slug) == 0

    run(scenario())


def test_a_busy_process_lets_a_slot_go_to_another_processs_waiter_after_a_few_hand_overs(meter_redis):
    """One slot; eight requests wait in one process, one in another. The busy process hands its slot to its
    own waiters HAND_OVERS_IN_A_ROW times, then gives it back and lets the other process's waiter have it:
    that one is served next, not after the busy process's whole queue."""
    info = provider(1, queued=10, timeout=10)

    async def scenario() -> None:
        busy, other = SharedSlots(info, 1), SharedSlots(info, 1)
        await busy.take()
        order: list[str] = []

        async def call(slots: SharedSlots, name: str) -> None:
            await slots.take()
            order.append(name)
            await asyncio.sleep(0.01)
            slots.give_back()

        queued: list[asyncio.Task[None]] = []
        for slots, name in [*((busy, f"busy {n}") for n in range(8)), (other, "other")]:
            queued.append(asyncio.create_task(call(slots, name)))
            while len(slots.waiting) < (len(queued) if slots is busy else 1):  # one after another
                await asyncio.sleep(0.005)
        busy.give_back()  # the first call ends
        await asyncio.gather(*queued)
        await settled(busy, other)
        assert order.index("other") == HAND_OVERS_IN_A_ROW, order
        assert [name for name in order if name != "other"] == [f"busy {n}" for n in range(8)]  # in turn
        assert leases_held(info.slug) == 0

    run(scenario())

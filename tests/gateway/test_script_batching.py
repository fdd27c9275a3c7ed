"""ScriptBatcher (gateway/metering/batching.py) on a real Redis: the calls of one event-loop turn share one
round trip, each runs its script exactly once and gets its own answer, whatever Redis forgets or refuses."""

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from gateway.metering.batching import ScriptBatcher

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs Redis: set REDIS_URL=redis://… (CI does)"
)

# Adds ARGV[1] to a counter and answers the new value; ARGV[1] = 'fail' is refused by the script itself.
ADD = """
if ARGV[1] == 'fail' then return redis.error_reply('refused on purpose') end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


@pytest.fixture
def client():
    return aioredis.Redis.from_url(settings.REDIS_URL)


def counter() -> str:
    return f"hi:test:batching:{uuid.uuid4().hex}"


async def pipelines_sent(client: aioredis.Redis, batcher: ScriptBatcher, calls: list) -> tuple[list, int]:
    """Runs the calls concurrently; answers their results and how many pipelines went to Redis."""
    sent = 0
    real = client.pipeline

    def counting(*args, **kwargs):
        nonlocal sent
        sent += 1
        return real(*args, **kwargs)

    client.pipeline = counting  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        client.pipeline = real  # type: ignore[method-assign]
    return results, sent


def test_calls_of_one_turn_share_one_round_trip_and_each_gets_its_own_answer(client):
    async def scenario():
        batcher, name = ScriptBatcher(client, ADD), counter()
        await client.script_load(ADD)  # else the first batch goes twice: NOSCRIPT, then loaded
        calls = [batcher(keys=[name], args=[amount]) for amount in (1, 10, 100, 1000)]
        results, sent = await pipelines_sent(client, batcher, calls)
        total = int(await client.get(name))
        await client.delete(name)
        await client.aclose()
        return results, sent, total

    results, sent, total = asyncio.run(scenario())
    assert sent == 1
    assert results == [1, 11, 111, 1111]  # each call ran once, in the order made
    assert total == 1111


def test_a_lone_call_goes_alone_and_answers_as_the_script_does(client):
    async def scenario():
        batcher, name = ScriptBatcher(client, ADD), counter()
        first = await batcher(keys=[name], args=[5])
        second = await batcher(keys=[name], args=[7])
        await client.delete(name)
        await client.aclose()
        return first, second

    assert asyncio.run(scenario()) == (5, 12)


def test_a_script_redis_forgot_is_loaded_and_every_call_runs_exactly_once(client):
    async def scenario():
        batcher, name = ScriptBatcher(client, ADD), counter()
        await batcher(keys=[name], args=[1])  # known to Redis now
        await client.script_flush()  # as after a restart
        results = await asyncio.gather(*(batcher(keys=[name], args=[1]) for _ in range(5)))
        total = int(await client.get(name))
        await client.delete(name)
        await client.aclose()
        return results, total

    results, total = asyncio.run(scenario())
    assert sorted(results) == [2, 3, 4, 5, 6]
    assert total == 6  # none ran twice, none was lost


def test_a_call_the_script_refuses_fails_alone(client):
    async def scenario():
        batcher, name = ScriptBatcher(client, ADD), counter()
        results = await asyncio.gather(
            batcher(keys=[name], args=[1]),
            batcher(keys=[name], args=["fail"]),
            batcher(keys=[name], args=[2]),
            return_exceptions=True,
        )
        await client.delete(name)
        await client.aclose()
        return results

    first, refused, third = asyncio.run(scenario())
    assert (first, third) == (1, 3)
    assert isinstance(refused, aioredis.ResponseError) and "refused on purpose" in str(refused)


def test_redis_unreachable_fails_every_call_of_the_batch():
    async def scenario():
        # A port nothing listens on (the discard port): the connection fails, so must each call.
        client = aioredis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=1)
        batcher = ScriptBatcher(client, ADD)
        results = await asyncio.gather(
            *(batcher(keys=[counter()], args=[1]) for _ in range(3)), return_exceptions=True
        )
        await client.aclose()
        return results

    results = asyncio.run(scenario())
    assert len(results) == 3
    assert all(isinstance(result, aioredis.ConnectionError) for result in results)

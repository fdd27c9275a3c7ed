"""ScriptBatcher (gateway/metering/batching.py) on its connection (gateway/metering/resp.py) and a real Redis:
the calls of one event-loop turn share one write, each runs its script exactly once and gets its own
answer, whatever Redis forgets or refuses. The connection's own rules: test_resp_connection.py."""

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis import exceptions

from gateway.metering import resp
from gateway.metering.batching import ScriptBatcher
from gateway.metering.resp import RespConnection

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


async def writes_made(monkeypatch, calls: list) -> tuple[list, int]:
    """Runs the calls concurrently; answers their results and how many writes went to Redis."""
    sent = 0
    real = resp._Protocol._flush

    def counting(self):
        nonlocal sent
        sent += 1
        real(self)

    monkeypatch.setattr(resp._Protocol, "_flush", counting)
    results = await asyncio.gather(*calls, return_exceptions=True)
    monkeypatch.setattr(resp._Protocol, "_flush", real)
    return results, sent


def test_calls_of_one_turn_share_one_write_and_each_gets_its_own_answer(client, monkeypatch):
    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        batcher = ScriptBatcher(connection, ADD)
        await batcher(keys=[name], args=[0])  # connected, and the script known to Redis
        calls = [batcher(keys=[name], args=[amount]) for amount in (1, 10, 100, 1000)]
        results, sent = await writes_made(monkeypatch, calls)
        total = int(await client.get(name))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results, sent, total

    results, sent, total = asyncio.run(scenario())
    assert sent == 1
    assert results == [1, 11, 111, 1111]  # each call ran once, in the order made
    assert total == 1111


def test_a_lone_call_goes_alone_and_answers_as_the_script_does(client):
    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        batcher = ScriptBatcher(connection, ADD)
        first = await batcher(keys=[name], args=[5])
        second = await batcher(keys=[name], args=[7])
        await client.delete(name)
        await client.aclose()
        connection.close()
        return first, second

    assert asyncio.run(scenario()) == (5, 12)


def test_a_script_redis_forgot_is_loaded_and_every_call_runs_exactly_once(client):
    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        batcher = ScriptBatcher(connection, ADD)
        await batcher(keys=[name], args=[1])  # known to Redis now
        await client.script_flush()  # as after a restart
        results = await asyncio.gather(*(batcher(keys=[name], args=[1]) for _ in range(5)))
        total = int(await client.get(name))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results, total

    results, total = asyncio.run(scenario())
    assert sorted(results) == [2, 3, 4, 5, 6]
    assert total == 6  # none ran twice, none was lost


def test_a_call_the_script_refuses_fails_alone(client):
    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        batcher = ScriptBatcher(connection, ADD)
        results = await asyncio.gather(
            batcher(keys=[name], args=[1]),
            batcher(keys=[name], args=["fail"]),
            batcher(keys=[name], args=[2]),
            return_exceptions=True,
        )
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results

    first, refused, third = asyncio.run(scenario())
    assert (first, third) == (1, 3)
    assert isinstance(refused, exceptions.ResponseError) and "refused on purpose" in str(refused)


def test_redis_unreachable_fails_every_call_of_the_batch():
    async def scenario():
        # A port nothing listens on (the discard port): the connection fails, so must each call.
        batcher = ScriptBatcher(RespConnection("redis://127.0.0.1:9/0", connect_timeout=1), ADD)
        return await asyncio.gather(
            *(batcher(keys=[counter()], args=[1]) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(scenario())
    assert len(results) == 3
    assert all(isinstance(result, exceptions.ConnectionError) for result in results)


def test_on_uvloop_as_in_production(client):
    """uvicorn runs the gateway on uvloop, whose transports are its own classes, not asyncio's."""
    import uvloop

    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        batcher = ScriptBatcher(connection, ADD)
        results = await asyncio.gather(*(batcher(keys=[name], args=[amount]) for amount in (2, 3)))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results

    assert uvloop.run(scenario()) == [2, 5]

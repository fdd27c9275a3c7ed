"""Lazy calls on the scripts' connection (gateway/metering/resp.py): a settlement waits a moment for the next
admission's write and leaves with it, or alone when the moment is over; it runs exactly once either way,
and a connection lost meanwhile fails it as it fails any call in flight (the journal's keeper retries it).
On a real Redis, and through the Redis meter."""

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis import exceptions

from billing import mirror
from gateway.metering import resp, scripts, writer
from gateway.metering.batching import ScriptBatcher
from gateway.metering.redis_meter import loop_client
from gateway.metering.resp import RespConnection
from tests.factories import make_workspace
from tests.gateway.test_redis_meter import HOLD, caller_for, mirrored, reserve, run, settle
from tests.gateway.test_script_batching import ADD, counter, writes_made

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs Redis: set REDIS_URL=redis://… (CI does)"
)


@pytest.fixture
def client():
    return aioredis.Redis.from_url(settings.REDIS_URL)


def test_a_lazy_call_leaves_with_the_next_prompt_call_in_one_write(client, monkeypatch):
    monkeypatch.setattr(resp, "LAZY_SECONDS", 30.0)  # it would wait that long for company

    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        lazy, prompt = ScriptBatcher(connection, ADD, lazy=True), ScriptBatcher(connection, ADD)
        await prompt(keys=[name], args=[0])  # connected, and the script known to Redis

        async def later_prompt_call():
            await asyncio.sleep(0.05)  # well after the lazy call's loop turn
            return await prompt(keys=[name], args=[10])

        started = time.monotonic()
        results, sent = await writes_made(monkeypatch, [lazy(keys=[name], args=[1]), later_prompt_call()])
        took = time.monotonic() - started
        total = int(await client.get(name))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results, sent, total, took

    results, sent, total, took = asyncio.run(scenario())
    assert sent == 1  # the lazy call waited, then left in the prompt call's write
    assert results == [1, 11]  # in the order made, each once
    assert total == 11
    assert took < 5  # it left with the prompt call, not when its own 30 s were up


def test_a_lazy_call_alone_leaves_when_its_wait_is_over(client, monkeypatch):
    monkeypatch.setattr(resp, "LAZY_SECONDS", 0.2)

    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        lazy = ScriptBatcher(connection, ADD, lazy=True)
        await ScriptBatcher(connection, ADD)(keys=[name], args=[0])
        started = time.monotonic()
        results, sent = await writes_made(monkeypatch, [lazy(keys=[name], args=[3])])
        took = time.monotonic() - started
        await client.delete(name)
        await client.aclose()
        connection.close()
        return results, sent, took

    results, sent, took = asyncio.run(scenario())
    assert results == [3] and sent == 1
    assert took >= 0.2  # not sent before its wait was over: nothing came to share it


def test_a_lazy_call_on_a_connection_lost_meanwhile_fails_and_never_runs(client, monkeypatch):
    monkeypatch.setattr(resp, "LAZY_SECONDS", 30.0)

    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        await ScriptBatcher(connection, ADD)(keys=[name], args=[0])
        waiting = asyncio.ensure_future(ScriptBatcher(connection, ADD, lazy=True)(keys=[name], args=[1]))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # still waiting for company
        connection.protocol.transport.abort()  # the connection is lost before anything came
        error = await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), 5)
        after = await ScriptBatcher(connection, ADD)(keys=[name], args=[5])  # the next call reconnects
        await client.delete(name)
        await client.aclose()
        connection.close()
        return error[0], after

    error, after = asyncio.run(scenario())
    assert isinstance(error, exceptions.ConnectionError)
    assert after == 5  # the lost lazy call never ran


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_meter_settles_lazily_in_the_next_admissions_write(monkeypatch, settings):
    """Through the Redis meter: a request's settlement and the next request's reservation share one write,
    and both reach the mirror as if sent alone."""
    settings.GATEWAY_METER = "redis"
    mirror.sync_client.cache_clear()
    # Known to Redis, as in service: a lazy call answered NOSCRIPT loads its script lazily too, which with
    # this wait would take a minute (another test may have flushed Redis' scripts).
    mirror.sync_client().script_load(scripts.SETTLE)
    monkeypatch.setattr(resp, "LAZY_SECONDS", 30.0)
    workspace = make_workspace(credits_micro_usd=1_000_000)
    caller = caller_for(workspace)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex

    async def scenario():
        await reserve(caller, first)
        assert loop_client()[1].connection is not None  # the scripts' own connection, on one Redis

        async def next_request():
            await asyncio.sleep(0.05)
            return await reserve(caller, second)

        return await writes_made(monkeypatch, [settle(caller, first, completion_tokens=40), next_request()])

    (cost, held), sent = run(scenario())
    assert sent == 1
    assert held == HOLD
    assert cost == 10 * 1 + 40 * 2  # test_redis_meter's MODEL: 10 tokens at $1/M, 40 at $2/M (µUSD)
    state = mirrored(mirror.workspace_hash(workspace.pk))
    assert state["bal"] == 1_000_000 - cost  # the first request paid
    assert state["held"] == HOLD  # the second holds its worst case; the first's hold is gone
    run(writer.drain())  # the first request's record, to PostgreSQL (not left for another test)

"""A Redis that stops answering without refusing (a partition, a stuck server) under load: a real gateway
process reaches the meter's Redis through a TCP proxy the test freezes (connections held open, nothing
passed either way). Every request is answered or refused within the meter connection's timeout (5 s), none
waits for the partition to end; once the gateway knows Redis is not answering, the requests after are
refused at once but for the one probing it; answers resume soon after Redis does, and every answer is
billed once."""

import asyncio
import json
import time
from dataclasses import replace

import httpx
import pytest

from billing.models import CreditAccount
from core.errors import ApiError, ErrorCode
from core.ids import new_request_id
from gateway.metering import resp
from gateway.metering.redis_meter import RedisMeter, close_loop_client
from tests.factories import key_less_caller, make_workspace
from tests.gateway.conftest import settled_generation
from tests.gateway.redis_meter_support import MODEL
from tests.gateway.test_postgres_outage import FreezableProxy
from tests.gateway.test_settlement_faults import (  # noqa: F401 (own_redis: a fixture)
    GatewayProcess,
    assert_billed_once,
    call,
    own_redis,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# Longer than two of the meter connection's 5 s timeouts: a second wave of requests meets a reconnection.
FREEZE_SECONDS = 15.0


Answer = tuple[int, str, str, float, float]  # status, request id, body, when it was sent, seconds it took


async def load_through_a_freeze(
    url: str, key: str, proxy: FreezableProxy
) -> tuple[list[Answer], float, float]:
    """16 clients until 3 s after Redis answers again; after 40 answers the proxy freezes FREEZE_SECONDS.
    Returns the answers and when the freeze began and ended (monotonic)."""
    answers: list[Answer] = []
    over = False
    frozen_at = thawed_at = 0.0

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not over:
            started = time.monotonic()
            status, request_id, body = await call(client, key, stream=False)
            answers.append((status, request_id, body, started, time.monotonic() - started))
            if status != 200:
                await asyncio.sleep(0.2)  # a client backing off from a 500

    async def partition() -> None:
        nonlocal over, frozen_at, thawed_at
        while len(answers) < 40:
            await asyncio.sleep(0.01)
        proxy.freeze()
        frozen_at = time.monotonic()
        await asyncio.sleep(FREEZE_SECONDS)
        proxy.thaw()
        thawed_at = time.monotonic()
        await asyncio.sleep(3)
        over = True

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(partition(), *(client_loop(client) for _ in range(16)))
    return answers, frozen_at, thawed_at


def test_through_a_redis_that_does_not_answer_no_request_waits_past_the_timeout(
    own_redis,  # noqa: F811 (the fixture imported above)
    funded_key,
    shipped_catalog,
    tmp_path,
):
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    proxy = FreezableProxy(("127.0.0.1", own_redis.port))
    gateway = GatewayProcess(tmp_path / "journal", REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
    try:
        answers, frozen_at, thawed_at = asyncio.run(load_through_a_freeze(gateway.url, key, proxy))
        answered = [request_id for status, request_id, *_ in answers if status == 200]
        for request_id in answered:
            settled_generation(request_id, timeout=30)
    finally:
        gateway.stop()
        proxy.stop()

    refused = [json.loads(body)["error"] for status, _, body, *_ in answers if status != 200]
    assert refused  # the partition did refuse some
    assert {(error["code"], error["type"]) for error in refused} == {("internal_error", "api_error")}
    # Each waited one timeout at most (the reconnection's included), not for the partition to end.
    assert max(took for *_, took in answers) < 6.5
    # Once a command has gone unanswered STALL_SECONDS, the requests sent meanwhile are refused at once, but
    # for the one probing whether Redis answers again (one at a time, each PROBE_SECONDS at the most often).
    known = frozen_at + resp.STALL_SECONDS + 0.5
    in_the_partition = [
        (status, took) for status, _, _, sent, took in answers if known < sent and sent + took < thawed_at
    ]
    slow = [took for _, took in in_the_partition if took > 0.5]
    print(f"{len(answers)} answers, {len(in_the_partition)} sent in the known partition, {len(slow)} slow")
    assert len(in_the_partition) > 100
    assert len(slow) <= (thawed_at - known) / resp.PROBE_SECONDS
    assert all(status != 200 for status, _ in in_the_partition)
    # Redis answers again: answers within a probe's wait.
    back = [sent for status, _, _, sent, _ in answers if status == 200 and sent > thawed_at]
    assert back and min(back) - thawed_at < resp.PROBE_SECONDS + 0.5
    assert_billed_once(workspace, answered, balance_before=before)


def test_a_free_request_and_a_mirror_load_are_refused_at_once_once_redis_is_known_silent(
    own_redis,  # noqa: F811 (the fixture imported above)
    settings,
):
    """A free request (token counting) on a rate-limited key, and the load of a workspace's mirror, go to
    the meter's Redis on the scripts' connection: once it is known silent they are refused at once, as
    reservations are, not each after the pooled client's 5 s timeout."""
    workspace, other = make_workspace(credits_micro_usd=1_000_000), make_workspace(credits_micro_usd=1_000)
    proxy = FreezableProxy(("127.0.0.1", own_redis.port))
    settings.REDIS_URL = f"redis://127.0.0.1:{proxy.port}/0"
    caller = replace(key_less_caller(workspace.id), api_key_id=1, rate_limit_rpm=100)
    meter = RedisMeter()

    async def scenario() -> tuple[float, float]:
        try:
            await meter.count_free_request(caller=caller)  # Redis answers
            proxy.freeze()
            unanswered = asyncio.create_task(meter.count_free_request(caller=caller))
            await asyncio.sleep(resp.STALL_SECONDS + 0.3)  # unanswered that long: Redis is known silent
            started = time.monotonic()
            with pytest.raises(ApiError) as refused:
                await meter.count_free_request(caller=caller)
            counted = time.monotonic() - started
            assert refused.value.code == ErrorCode.INTERNAL_ERROR
            started = time.monotonic()
            with pytest.raises(ApiError):  # `other`'s mirror is not in Redis: a load, refused
                await meter.reserve(
                    caller=key_less_caller(other.id), model=MODEL, request_id=new_request_id(),
                    prompt_tokens=10, max_tokens=10,
                )  # fmt: skip
            loaded = time.monotonic() - started
            with pytest.raises(ApiError):
                await unanswered  # its own timeout
            return counted, loaded
        finally:
            proxy.thaw()
            await close_loop_client()

    try:
        counted, loaded = asyncio.run(scenario())
    finally:
        proxy.stop()
    assert counted < 0.1 and loaded < 0.1, (counted, loaded)

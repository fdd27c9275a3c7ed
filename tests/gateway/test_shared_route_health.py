"""Route cooldowns shared by every gateway process that meters on one Redis (gateway/route_health.py, ADR
0027), on a real Redis and a real Redis Cluster (`meter_redis`). Two RouteHealth of one loop stand for two
gateway processes: each counts its own failures, and only Redis is between them. (Across real deployments:
tests/scaleout/test_three_deployments.py.)"""

import asyncio
import time
import uuid

import pytest

from billing import mirror
from core.errors import ErrorCode
from gateway import route_health as health
from gateway.route_health import COOLDOWNS, RouteHealth
from gateway.upstreams.base import ProviderInfo, RouteInfo, UpstreamError
from tests.gateway.redis_meter_support import run

pytestmark = [pytest.mark.redis]

TIMEOUT = UpstreamError(ErrorCode.PROVIDER_TIMEOUT, "slow")


def routes() -> list[RouteInfo]:
    """A model's two routes, of providers no other test names (the cooldowns' hash is the whole Redis's)."""
    tag = uuid.uuid4().hex[:8]
    return [
        RouteInfo(ProviderInfo(f"first-{tag}", "openai_compatible", "http://x", "k", 5.0), "m"),
        RouteInfo(ProviderInfo(f"second-{tag}", "openai_compatible", "http://x", "k", 5.0), "m"),
    ]


async def cool(process: RouteHealth, route: RouteInfo) -> None:
    """The route fails in a row in `process` until it cools there, and its cooldown is written."""
    for _ in range(health.FAILURES_TO_COOL):
        process.failed(route, TIMEOUT)
    await written(process)


async def written(*processes: RouteHealth) -> None:
    while any(process._announcing for process in processes):
        await asyncio.sleep(0.005)


def in_redis(route: RouteInfo) -> int | None:
    value = mirror.sync_client().hget(COOLDOWNS, f"{route.provider.slug}\n{route.upstream_model_id}")
    return None if value is None else int(value)


@pytest.fixture
def short_cooldown(monkeypatch):
    monkeypatch.setattr(health, "COOLDOWN_SECONDS", 0.3)
    monkeypatch.setattr(health, "PROBE_GRACE_SECONDS", 0.3)


def test_a_route_cooled_in_one_process_is_tried_last_in_another_until_the_same_moment(meter_redis):
    first, second = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        await cool(one, first)
        assert list(other.in_order(model)) == model  # it has not read Redis yet
        await asyncio.sleep(1)
        await other.read_shared()
        assert list(other.in_order(model)) == [second, first]
        # the same end (on Redis's clock, within the calls' round trips), not a cooldown from the read on
        ends = [process._cooling_until[health._key(first)] for process in (one, other)]
        assert abs(ends[0] - ends[1]) < 0.5

    run(scenario())


def test_a_route_answering_again_in_one_process_ends_the_cooldown_others_learned(meter_redis):
    first, _ = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        await cool(one, first)
        await other.read_shared()
        one.answered(first)  # its probe answered
        await written(one)
        assert in_redis(first) < 0
        await other.read_shared()
        assert list(one.in_order(model)) == list(other.in_order(model)) == model

    run(scenario())


def test_a_process_that_found_the_route_failing_itself_keeps_its_own_cooldown(meter_redis):
    """Another's answer ends only cooldowns learned from Redis: this process's own failures are its own
    evidence, and its own probe decides."""
    first, second = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        await cool(one, first)
        await cool(other, first)
        one.answered(first)
        await written(one)
        await other.read_shared()
        assert list(other.in_order(model)) == [second, first]

    run(scenario())


def test_a_learned_cooldown_is_probed_by_the_process_that_began_it_and_by_it_alone(
    meter_redis, short_cooldown
):
    """Its end comes at the same moment everywhere; the process that began it probes the route, and says
    so, so the others keep trying it last for as long as the probe may take (the provider's timeout), not
    each probing it too: one request waits out a silent provider, not one in every process."""
    first, second = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        await cool(one, first)
        await other.read_shared()
        await asyncio.sleep(0.35)  # both cooldowns over
        assert list(other.in_order(model)) == [second, first]  # not its to probe (yet)
        assert list(one.in_order(model)) == model  # the probe
        await written(one)
        await other.read_shared()
        await asyncio.sleep(health.PROBE_GRACE_SECONDS + 0.05)  # past the grace, not past the probe's time
        assert list(other.in_order(model)) == [second, first]
        one.answered(first)
        await written(one)
        await other.read_shared()
        assert list(other.in_order(model)) == model

    run(scenario())


def test_a_learned_cooldown_nobody_probes_is_probed_after_the_grace_and_a_failure_spreads(
    meter_redis, short_cooldown, monkeypatch
):
    """The process that began it had no request for the model since: past PROBE_GRACE_SECONDS another
    probes it; its failure (one: a probe's) cools the route again at once, everywhere."""
    first, second = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        await cool(one, first)
        await other.read_shared()
        await asyncio.sleep(0.35)
        assert list(other.in_order(model)) == [second, first]  # the grace
        await asyncio.sleep(health.PROBE_GRACE_SECONDS + 0.05)
        assert list(other.in_order(model)) == model  # the probe
        monkeypatch.setattr(health, "COOLDOWN_SECONDS", 30.0)  # what follows is not a race with the clock
        other.failed(first, TIMEOUT)
        await written(other)
        assert list(other.in_order(model)) == [second, first]
        await one.read_shared()  # without it, the first process's next request would probe the route
        assert list(one.in_order(model)) == [second, first]

    run(scenario())


def test_the_processes_follow_redis_every_follow_seconds(meter_redis, monkeypatch):
    monkeypatch.setattr(health, "FOLLOW_SECONDS", 0.05)
    first, second = model = routes()

    async def scenario() -> None:
        one, other = RouteHealth(), RouteHealth()
        following = asyncio.create_task(other.follow())
        try:
            await cool(one, first)
            started = time.monotonic()
            while list(other.in_order(model)) != [second, first]:
                assert time.monotonic() - started < 1, "the cooldown was not followed"
                await asyncio.sleep(0.01)
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    run(scenario())


def test_an_entry_is_forgotten_once_every_process_has_read_it(meter_redis, monkeypatch, short_cooldown):
    monkeypatch.setattr(health, "FORGET_SECONDS", 0.2)
    first, _ = routes()

    async def scenario() -> None:
        one = RouteHealth()
        await cool(one, first)
        await one.read_shared()
        assert in_redis(first) is not None  # cooling for 0.3 s more
        await asyncio.sleep(0.6)
        await one.read_shared()
        assert in_redis(first) is None

    run(scenario())


def test_with_the_sql_meter_nothing_is_written(settings):
    settings.GATEWAY_METER = "sql"
    first, second = model = routes()

    async def scenario() -> None:
        one = RouteHealth()
        await cool(one, first)
        assert list(one.in_order(model)) == [second, first]

    run(scenario())
    if settings.REDIS_URL:
        assert in_redis(first) is None


def test_while_redis_fails_each_process_keeps_its_own_cooldowns(settings, caplog):
    settings.GATEWAY_METER = "redis"
    settings.METER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    first, second = model = routes()

    async def scenario() -> None:
        one = RouteHealth()
        await cool(one, first)
        await one.read_shared()
        assert list(one.in_order(model)) == [second, first]

    run(scenario())
    assert "route cooldowns: Redis failed" in caplog.text
    assert caplog.text.count("route cooldowns: Redis failed") == 1  # at most once every 10 s

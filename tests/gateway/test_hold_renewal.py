"""A request that runs longer than its hold lasts (RESERVATION_TTL_SECONDS: a reasoning model's long answer,
a slow model, a slow reader) keeps its hold: the journal's keeper renews the holds of the requests under
way, so the reaper does not release what they hold while they run (ADR 0028). A hold nobody renews (its
process died) is still released."""

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from billing import mirror, reservations
from billing.models import Reservation
from gateway.canonical import Usage
from gateway.metering import get_meter, writer
from gateway.metering.journal import Journal
from gateway.metering.keeper import Keeper
from gateway.models import Generation
from tests.factories import key_less_caller, make_workspace
from tests.fakes.openai_dialects import openai_fake
from tests.fakes.openai_scenario import Scenario
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.journal_support import opened, settlement
from tests.gateway.redis_meter_support import MODEL, run
from tests.gateway.test_settlement_faults import GatewayProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TTL_SECONDS = 4  # the keeper renews every third of it; Redis keeps whole seconds


@pytest.fixture(params=["redis", "redis cluster", "sql"])
def meter_kind(request, settings) -> Iterator[str]:
    """The meter, and for the Redis meter its Redis: REDIS_URL's, or the tests' Redis Cluster. The holds a
    test leaves (renewed, never settled) are removed after it: another test's reaper would count them."""
    settings.GATEWAY_METER = "sql" if request.param == "sql" else "redis"
    cluster = request.getfixturevalue("redis_cluster") if request.param == "redis cluster" else None
    if cluster is not None:
        settings.METER_REDIS_URL, settings.METER_REDIS_CLUSTER = cluster.url, True
    mirror.sync_client.cache_clear()
    yield "sql" if request.param == "sql" else "redis"
    if cluster is not None:
        cluster.flush()
    elif request.param == "redis":
        client = mirror.sync_client()
        for name in client.scan_iter(match=mirror.PREFIX + "*", count=1000):
            client.delete(name)
    mirror.sync_client.cache_clear()


def hold_expiry(meter_kind: str, workspace_id: uuid.UUID, request_id: str) -> float | None:
    """When the request's hold expires (epoch seconds), as the reaper reads it; None: no hold."""
    if meter_kind == "redis":
        return mirror.sync_client().zscore(mirror.holds(mirror.shard_of(workspace_id)), request_id)
    reservation = Reservation.objects.filter(request_id=request_id, status="held").first()
    return None if reservation is None else reservation.expires_at.timestamp()


async def reap(meter_kind: str) -> int:
    if meter_kind == "redis":
        _, reaped = await writer.maintain()
        return reaped
    return await asyncio.to_thread(reservations.reap_expired)


def test_the_keeper_renews_the_holds_of_requests_under_way_and_the_reaper_leaves_them(
    meter_kind, settings, tmp_path
):
    settings.RESERVATION_TTL_SECONDS = TTL_SECONDS
    workspace = make_workspace(credits_micro_usd=1_000_000)
    caller = key_less_caller(workspace.id)

    async def scenario():
        meter = get_meter()
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        running = opened(journal, workspace.id)  # under way in this process
        orphan = uuid.uuid4().hex  # a hold whose process died: nobody renews it
        for request_id in (running, orphan):
            await meter.reserve(
                caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
            )
        reserved_at = time.time()
        await asyncio.sleep(TTL_SECONDS / 3 + 0.2)
        await keeper.keep_once(time.time())  # renews `running`: under way for a third of the TTL
        renewed_to = await asyncio.to_thread(hold_expiry, meter_kind, workspace.id, running)
        await asyncio.sleep(reserved_at + TTL_SECONDS + 0.5 - time.time())  # both first holds expired
        reaped = await reap(meter_kind)
        return running, orphan, reserved_at, renewed_to, reaped

    running, orphan, reserved_at, renewed_to, reaped = run(scenario())
    assert renewed_to is not None and renewed_to >= reserved_at + TTL_SECONDS  # moved on by the renewal
    assert reaped == 1  # the orphan's
    assert hold_expiry(meter_kind, workspace.id, running) == renewed_to  # still held, as it runs
    assert hold_expiry(meter_kind, workspace.id, orphan) is None


def test_renewing_does_not_bring_back_a_hold_that_was_settled(meter_kind, tmp_path):
    workspace = make_workspace(credits_micro_usd=1_000_000)
    caller = key_less_caller(workspace.id)
    request_id = uuid.uuid4().hex

    async def scenario():
        meter = get_meter()
        await meter.reserve(
            caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
        )
        await meter.settle(settlement(request_id, workspace.id, Usage(10, 5)))
        return await meter.renew([(str(workspace.id), request_id)])

    assert run(scenario()) == 0
    assert hold_expiry(meter_kind, workspace.id, request_id) is None


def test_through_a_gateway_process_a_stream_longer_than_its_hold_lasts_keeps_it_to_the_end(
    funded_key, shipped_catalog, tmp_path, monkeypatch
):
    """A real gateway process with a 3 s TTL (its writer reaps expired holds every 5 s) streams an answer
    that takes ~9 s: midway, past its first expiry and a reaping, the hold is still there; at the end the
    answer is billed once and nothing stays held."""
    workspace, key = funded_key
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    slow = Scenario(text="x" * 180, piece=5, frame_interval=0.25)  # 36 deltas, ~9 s
    with openai_fake("cerebras", slow) as fake:
        serve_model_from("test/slow", [("openai_compatible", fake.url + "/v1")])
        gateway = GatewayProcess(tmp_path / "journal", RESERVATION_TTL_SECONDS="3")
        try:
            with httpx.Client(base_url=gateway.url, timeout=60) as client:
                body = {"model": "test/slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
                headers = {"Authorization": f"Bearer {key}"}
                with client.stream("POST", "/api/v1/chat/completions", json=body, headers=headers) as answer:
                    request_id = answer.headers["x-request-id"]
                    started, midway = time.monotonic(), None
                    for _ in answer.iter_lines():
                        if midway is None and time.monotonic() - started > 7:
                            midway = hold_expiry("redis", workspace.id, request_id)
            generation = settled_generation(request_id, timeout=10)
        finally:
            gateway.stop()
    assert time.monotonic() - started > 8  # it did outlast the TTL and a reaping
    assert midway is not None and midway > time.time() - 2  # renewed, still held midway
    assert generation.status == "completed"
    assert Generation.objects.filter(request_id=request_id).count() == 1
    assert mirror.sync_client().hget(mirror.workspace_hash(workspace.id), "held") in (None, b"0")

"""The Redis meter's backstop: a real Celery worker on Redis writes a settled batch to PostgreSQL."""

import asyncio
import time
import uuid

import pytest

from billing import mirror
from billing.models import EntryKind, LedgerEntry
from gateway.canonical import Usage
from gateway.metering import Outcome, Settlement
from gateway.metering.redis_meter import RedisMeter, close_loop_client
from gateway.models import Generation
from gateway.tasks import flush_metering
from tests.factories import key_less_caller, make_workspace
from tests.gateway.redis_meter_support import MODEL

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def reserve_and_settle(workspace_id: uuid.UUID, request_id: str) -> int:
    meter = RedisMeter()
    caller = key_less_caller(workspace_id)
    try:
        await meter.reserve(
            caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
        )
        settlement = Settlement(
            request_id=request_id,
            caller=caller,
            model=MODEL,
            ingress_format="chat_completions",
            streamed=False,
            end_user=None,
            outcome=Outcome(status="completed", usage=Usage(10, 20), latency_ms=5),
        )
        return await meter.settle(settlement)
    finally:
        await close_loop_client()


def test_the_celery_backstop_writes_a_pending_batch(worker, settings):
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    request_id = uuid.uuid4().hex
    cost = asyncio.run(reserve_and_settle(workspace.id, request_id))
    assert cost == 10 * 1 + 20 * 2
    assert mirror.queued_records() >= 1  # settled in Redis, not yet in PostgreSQL
    assert not Generation.objects.filter(request_id=request_id).exists()

    flush_metering.delay()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Generation.objects.filter(request_id=request_id).exists():
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        time.sleep(0.2)
    generation = Generation.objects.get(request_id=request_id)
    assert generation.cost_micro_usd == cost
    debit = LedgerEntry.objects.get(kind=EntryKind.USAGE, reference=request_id)
    assert debit.amount_micro_usd == -cost

"""What the Redis meter's tests share (test_redis_meter.py, test_redis_meter_writer.py; the journal's and the
backstop's tests take the model and `run`): a priced model, a caller, reserving and settling in a fresh event
loop as a gateway process would, and an empty queue around each test (the autouse fixture, where imported)."""

import asyncio
import uuid
from decimal import Decimal

import pytest

from billing import mirror
from billing.models import LimitReset
from console.models import ApiKey
from console.services.keys import api_key_create
from gateway.auth import Caller
from gateway.canonical import Usage
from gateway.catalog_cache import ModelInfo
from gateway.metering import Outcome, Settlement, writer
from gateway.metering.base import worst_case
from gateway.metering.redis_meter import RedisMeter, close_loop_client

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

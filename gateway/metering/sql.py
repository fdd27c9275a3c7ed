"""The SQL meter (the embedded default): reserve and settle through billing.reservations, a transaction each.

Every call runs ORM code in a worker thread. Simple and exact, but each request takes the workspace's
account row lock twice, so a busy workspace is limited by that lock (bench/README.md).
"""

import asyncio
import time
import uuid
from typing import Any

from django.db import transaction

from billing import reservations
from billing.errors import InsufficientCredits, KeyLimitExceeded
from billing.models import Reservation, ReservationStatus
from gateway.auth import Caller
from gateway.catalog_cache import ModelInfo
from gateway.http import in_thread
from gateway.metering.base import Settlement, charge_for, generation_record, refused, worst_case
from gateway.metering.records import fields_from_json, generation_data
from gateway.metering.top_ups import top_ups_after_commit
from gateway.models import Generation
from gateway.ratelimit import check_rate_limit

GENERATION_WAIT_SECONDS = 5.0


def reserve_sync(
    *,
    caller: Caller,
    model: ModelInfo,
    request_id: str,
    prompt_tokens: int,
    max_tokens: int | None,
    extra_micro_usd: int = 0,
) -> int:
    if caller.rate_limit_rpm and caller.api_key_id is not None:
        check_rate_limit(api_key_id=caller.api_key_id, rpm=caller.rate_limit_rpm)
    amount = worst_case(model, prompt_tokens, max_tokens, extra_micro_usd)
    try:
        reservations.reserve(
            workspace_id=caller.workspace_id,
            api_key_id=caller.api_key_id,
            amount_micro_usd=amount,
            request_id=request_id,
            key_limit_micro_usd=caller.limit_micro_usd,
            key_limit_reset=caller.limit_reset,
        )
    except (InsufficientCredits, KeyLimitExceeded) as exc:
        raise refused(exc) from exc
    return amount


def settle_sync(settlement: Settlement) -> int:
    """Charge and write the generation record in one transaction; a replay changes nothing."""
    cost = charge_for(settlement)
    fields = fields_from_json(generation_record(settlement, cost=cost))
    del fields["request_id"]  # the row's key, below
    usage = settlement.outcome.usage
    with transaction.atomic():
        reservations.settle(
            request_id=settlement.request_id,
            actual_cost_micro_usd=cost,
            usage={
                "model": settlement.model.slug,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
        )
        Generation.objects.update_or_create(request_id=settlement.request_id, defaults=fields)
        if cost > 0:
            top_ups_after_commit([settlement.caller.workspace_id])
    return cost


def find_generation(workspace_id: uuid.UUID, request_id: str) -> tuple[dict[str, Any] | None, bool]:
    """(the record, whether the request is still in flight)."""
    # In flight first: a settlement that commits between the two reads leaves its record for the second.
    in_flight = Reservation.objects.filter(
        request_id=request_id, workspace_id=workspace_id, status=ReservationStatus.HELD
    ).exists()
    generation = Generation.objects.filter(request_id=request_id, workspace_id=workspace_id).first()
    if generation is not None:
        return generation_data(generation), False
    return None, in_flight


class SqlMeter:
    durable = True

    async def reserve(
        self,
        *,
        caller: Caller,
        model: ModelInfo,
        request_id: str,
        prompt_tokens: int,
        max_tokens: int | None,
        extra_micro_usd: int = 0,
    ) -> int:
        return await in_thread(
            reserve_sync,
            caller=caller,
            model=model,
            request_id=request_id,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            extra_micro_usd=extra_micro_usd,
        )

    async def settle(self, settlement: Settlement) -> int:
        return await in_thread(settle_sync, settlement)

    async def count_free_request(self, *, caller: Caller) -> None:
        if caller.rate_limit_rpm and caller.api_key_id is not None:
            await in_thread(check_rate_limit, api_key_id=caller.api_key_id, rpm=caller.rate_limit_rpm)

    async def still_held(self, settlements: list[tuple[str, str]]) -> set[str]:
        return set()  # what it took is in PostgreSQL

    async def renew(self, holds: list[tuple[str, str]]) -> int:
        return await in_thread(reservations.renew, request_ids=[request_id for _, request_id in holds])

    async def generation(self, *, workspace_id: uuid.UUID, request_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + GENERATION_WAIT_SECONDS
        while True:
            found, in_flight = await in_thread(find_generation, workspace_id, request_id)
            # A request that just finished is settled right after its last byte: wait for it, briefly.
            if found is not None or not in_flight or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

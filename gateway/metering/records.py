"""A generation record in its three shapes: a Generation row, JSON in Redis, and the API's answer."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from gateway.models import Generation, GenerationStatus

_DATETIME_FIELDS = ("created_at", "finished_at")


def fields_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """A generation record's JSON (metering.base.generation_record) as a Generation's fields."""
    fields = {**data, "workspace_id": uuid.UUID(data["workspace_id"])}
    for name in _DATETIME_FIELDS:
        fields[name] = datetime.fromisoformat(data[name])
    return fields


def generation_from_json(data: dict[str, Any]) -> Generation:
    return Generation(**fields_from_json(data))


def generation_data(g: Generation) -> dict[str, Any]:
    """GET /api/v1/generation's `data` object."""
    data = {
        "id": g.request_id,
        "model": g.model,
        "provider": g.provider,
        "ingress_format": g.ingress_format,
        "source": g.source,
        "streamed": g.streamed,
        "tokens_prompt": g.tokens_prompt,
        "tokens_completion": g.tokens_completion,
        "tokens_reasoning": g.tokens_reasoning,
        "tokens_cached_prompt": g.tokens_cached_prompt,
        "total_cost": g.cost_micro_usd / 1_000_000,
        "cost_micro_usd": str(g.cost_micro_usd),
        "tool_costs_micro_usd": {name: str(cost) for name, cost in (g.tool_costs_micro_usd or {}).items()},
        "latency_ms": g.latency_ms,
        "ttft_ms": g.ttft_ms,
        "status": g.status,
        "finish_reason": g.finish_reason,
        "created_at": g.created_at.isoformat(),
    }
    if g.error_code:
        data["error_code"] = g.error_code
    if g.provider_metadata:
        data["provider_metadata"] = g.provider_metadata
    return data


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request admitted as far as the reservation, then refused for money (no reservation, no charge)."""

    workspace_id: uuid.UUID
    api_key_id: int | None
    source: str
    model: str
    ingress_format: str
    streamed: bool
    error_code: str
    latency_ms: int
    end_user: str = ""


def refusal_record(*, request_id: str, refusal: Refusal) -> Generation:
    """The refused request as a failed generation at no cost, once (a replay changes nothing)."""
    finished = timezone.now()
    end_user_length = Generation._meta.get_field("end_user").max_length or 0
    generation, _ = Generation.objects.get_or_create(
        request_id=request_id,
        defaults={
            "workspace_id": refusal.workspace_id,
            "api_key_id": refusal.api_key_id,
            "source": refusal.source,
            "ingress_format": refusal.ingress_format,
            "model": refusal.model,
            "streamed": refusal.streamed,
            "status": GenerationStatus.FAILED,
            "error_code": refusal.error_code,
            "end_user": refusal.end_user[:end_user_length],
            "latency_ms": refusal.latency_ms,
            "created_at": finished - timedelta(milliseconds=refusal.latency_ms),
            "finished_at": finished,
        },
    )
    return generation

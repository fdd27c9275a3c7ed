"""Reserve before the upstream call, settle and record after it (DESIGN §4), through the billing service.

These functions are synchronous (they use the ORM); the ASGI app calls them from worker threads.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing import reservations
from billing.errors import InsufficientCredits, KeyLimitExceeded
from catalog.pricing import generation_cost_micro_usd, worst_case_cost_micro_usd
from gateway.auth import Caller
from gateway.canonical import CanonicalRequest, Usage
from gateway.catalog_cache import ModelInfo
from gateway.errors import ErrorCode, GatewayError
from gateway.models import Generation, GenerationStatus

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What happened upstream, as the generation record and the bill need it."""

    status: str
    usage: Usage
    provider: str = ""
    upstream_model_id: str = ""
    finish_reason: str = ""
    error_code: str = ""
    latency_ms: int = 0
    ttft_ms: int | None = None


def reserve_for(
    *, caller: Caller, model: ModelInfo, request_id: str, prompt_tokens: int, max_tokens: int | None
) -> int:
    amount = worst_case_cost_micro_usd(model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens)
    try:
        reservations.reserve(
            workspace_id=caller.workspace_id,
            api_key_id=caller.api_key_id,
            amount_micro_usd=amount,
            request_id=request_id,
        )
    except InsufficientCredits as exc:
        raise GatewayError(
            ErrorCode.INSUFFICIENT_CREDITS,
            "Insufficient credits for this request's worst case; top up, or lower max_tokens.",
        ) from exc
    except KeyLimitExceeded as exc:
        raise GatewayError(ErrorCode.KEY_LIMIT_EXCEEDED, "This key's credit limit is reached.") from exc
    return amount


def cost_of(model: ModelInfo, usage: Usage) -> int:
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    return generation_cost_micro_usd(
        model=model,
        prompt_tokens=usage.prompt_tokens - cached,
        cached_prompt_tokens=cached,
        completion_tokens=usage.completion_tokens,
    )


def settle_and_record(
    *,
    caller: Caller,
    model: ModelInfo,
    request: CanonicalRequest,
    request_id: str,
    ingress_format: str,
    outcome: Outcome,
) -> int:
    """Charge what was generated (nothing for a failure) and write the generation record, atomically."""
    usage = outcome.usage
    cost = cost_of(model, usage) if outcome.status != GenerationStatus.FAILED else 0
    with transaction.atomic():
        reservations.settle(
            request_id=request_id,
            actual_cost_micro_usd=cost,
            usage={
                "model": model.slug,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
        )
        Generation.objects.update_or_create(
            request_id=request_id,
            defaults={
                "workspace_id": caller.workspace_id,
                "api_key_id": caller.api_key_id,
                "source": caller.source,
                "ingress_format": ingress_format,
                "model": model.slug,
                "provider": outcome.provider,
                "upstream_model_id": outcome.upstream_model_id,
                "streamed": request.stream,
                "tokens_prompt": usage.prompt_tokens,
                "tokens_completion": usage.completion_tokens,
                "tokens_reasoning": usage.reasoning_tokens,
                "tokens_cached_prompt": usage.cached_prompt_tokens,
                "cost_micro_usd": cost,
                "latency_ms": outcome.latency_ms,
                "ttft_ms": outcome.ttft_ms,
                "status": outcome.status,
                "finish_reason": outcome.finish_reason,
                "error_code": outcome.error_code,
                "end_user": request.user or "",
                "finished_at": timezone.now(),
            },
        )
    return cost

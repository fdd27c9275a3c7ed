"""Generation records laid out in time, so that the catalog pages have live figures to show."""

import datetime
import itertools

from django.utils import timezone

from console.models import Workspace
from gateway.models import Generation, GenerationStatus

_ids = itertools.count(1)


def record_generation(
    *,
    workspace: Workspace,
    model: str,
    ago: datetime.timedelta,
    tokens_prompt: int = 100,
    tokens_completion: int = 50,
    status: str = GenerationStatus.COMPLETED,
    ttft_ms: int | None = 200,
    latency_ms: int = 1_200,
) -> Generation:
    return Generation.objects.create(
        request_id=f"catalog-page-{next(_ids)}",
        workspace=workspace,
        ingress_format="chat_completions",
        model=model,
        provider="cerebras",
        tokens_prompt=tokens_prompt,
        tokens_completion=tokens_completion,
        status=status,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        created_at=timezone.now() - ago,
    )


def roll_up_and_refresh() -> int:
    """What beat has done by now for records laid out in the past: every hour since they began rolled up
    (gateway/rollups.py), then the catalog's figures refreshed from the rollups."""
    from gateway.rollups import roll_up_usage
    from gateway.tasks import refresh_model_figures

    roll_up_usage(since=timezone.now() - datetime.timedelta(days=60))
    return refresh_model_figures()

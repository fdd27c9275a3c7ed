"""Catalog writes other than providers.yaml (which catalog.loader owns): the live figures of each model.

The gateway writes a model's figures here (gateway.tasks.refresh_model_figures); the catalog's pages and API
read them back through catalog.selectors. So the catalog never reads generation records itself.
"""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from catalog.models import Model, ModelFigures

FIGURE_DAYS = 30  # the daily-volume chart's span


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """A model's traffic: tokens of completed requests, and how its last day's requests went."""

    weekly_tokens: int = 0  # prompt + completion, last 7 days
    daily_tokens: tuple[tuple[datetime.date, int], ...] = ()  # per UTC day, oldest first
    requests: int = 0  # finished in the last 24 hours (completed, failed or cancelled)
    success_rate: float | None = None  # completed / finished, 0..1
    median_ttft_ms: float | None = None
    median_output_tokens_per_second: float | None = None


_FIGURE_FIELDS = [
    "weekly_tokens",
    "daily_tokens",
    "requests",
    "success_rate",
    "median_ttft_ms",
    "median_output_tokens_per_second",
    "computed_at",
]


def model_figures_store(*, figures: Mapping[str, LiveFigures], computed_at: datetime.datetime) -> int:
    """Replace the live-figure snapshot of each model named by slug; returns how many were stored.

    Slugs the catalog does not know are skipped: generations may name a model that was never loaded.
    """
    ids = dict(Model.objects.filter(slug__in=list(figures)).values_list("slug", "pk"))
    rows = [
        ModelFigures(
            model_id=ids[slug],
            weekly_tokens=live.weekly_tokens,
            daily_tokens=[{"date": day.isoformat(), "tokens": tokens} for day, tokens in live.daily_tokens],
            requests=live.requests,
            success_rate=live.success_rate,
            median_ttft_ms=live.median_ttft_ms,
            median_output_tokens_per_second=live.median_output_tokens_per_second,
            computed_at=computed_at,
        )
        for slug, live in figures.items()
        if slug in ids
    ]
    # One upsert statement: a page read meanwhile sees the old snapshot or the new one, never half of it.
    ModelFigures.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["model"], update_fields=_FIGURE_FIELDS
    )
    return len(rows)

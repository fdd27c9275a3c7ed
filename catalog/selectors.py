"""Catalog reads shared by several apps."""

import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Model, ModelFigures, ToolPrice
from catalog.services import FIGURE_DAYS, LiveFigures


def models_active() -> QuerySet[Model]:
    """Active models in catalog order, with creator, routes and their providers loaded."""
    return (
        Model.objects.filter(is_active=True)
        .select_related("creator")
        .prefetch_related("routes__provider")
        .order_by("position", "slug")
    )


def model_get(slug: str) -> Model | None:
    """The active model with this slug, or None (inactive models are not served)."""
    return models_active().filter(slug=slug).first()


def tool_prices() -> dict[tuple[str, str], Decimal]:
    """Server tool prices in USD by (tool, unit), as catalog.pricing.tool_costs_micro_usd takes them."""
    return {(p.tool, p.unit): p.price_usd for p in ToolPrice.objects.all()}


def model_slugs() -> set[str]:
    """Slugs of active models (e.g. to validate an API key's model allowlist)."""
    return set(Model.objects.filter(is_active=True).values_list("slug", flat=True))


def weekly_token_volumes() -> dict[str, int]:
    """Each model's tokens over the last 7 days in the latest snapshot: {slug: tokens}; absent when none."""
    return dict(ModelFigures.objects.values_list("model__slug", "weekly_tokens"))


def model_figures_get(*, slug: str, days: int = FIGURE_DAYS) -> LiveFigures:
    """The model's live figures from the latest snapshot; all zero and None when it has none.

    The daily volume always covers the `days` UTC days up to today (0 when idle or not in the snapshot), so
    a snapshot taken before midnight still draws a chart that ends today.
    """
    stored = ModelFigures.objects.filter(model__slug=slug).first()
    rows = stored.daily_tokens if stored is not None else []
    by_day = {datetime.date.fromisoformat(row["date"]): row["tokens"] for row in rows}
    today = timezone.now().date()
    first = today - datetime.timedelta(days=days - 1)
    daily = tuple(
        (day, by_day.get(day, 0)) for day in (first + datetime.timedelta(days=n) for n in range(days))
    )
    if stored is None:
        return LiveFigures(daily_tokens=daily)
    return LiveFigures(
        weekly_tokens=stored.weekly_tokens,
        daily_tokens=daily,
        requests=stored.requests,
        success_rate=stored.success_rate,
        median_ttft_ms=stored.median_ttft_ms,
        median_output_tokens_per_second=stored.median_output_tokens_per_second,
    )

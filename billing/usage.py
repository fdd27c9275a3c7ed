"""A workspace's usage over a window, from the usage rollups (ADR 0011): per hour for the last 48 hours, per
UTC day for longer windows, broken down by model or by API key. What the dashboard's Usage page and its CSV
export show; never a scan of the generation records."""

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db.models import Sum
from django.utils import timezone

from billing.models import USAGE_SUMS, UsagePeriod, UsageRollup

# name -> (bucket period, buckets shown)
USAGE_RANGES: dict[str, tuple[str, int]] = {
    "48h": (UsagePeriod.HOUR, 48),
    "7d": (UsagePeriod.DAY, 7),
    "30d": (UsagePeriod.DAY, 30),
    "90d": (UsagePeriod.DAY, 90),
}
Breakdown = Literal["model", "key"]
MAX_SERIES = 8  # the dearest series shown on their own; the rest are summed as "other"


@dataclass(frozen=True, slots=True)
class UsageFigures:
    requests: int = 0
    tokens_prompt: int = 0
    tokens_completion: int = 0
    tokens_reasoning: int = 0
    tokens_cached_prompt: int = 0
    cost_micro_usd: int = 0

    @property
    def tokens(self) -> int:
        """Prompt and completion tokens (reasoning is part of completion, cached part of prompt)."""
        return self.tokens_prompt + self.tokens_completion

    def __add__(self, other: "UsageFigures") -> "UsageFigures":
        return UsageFigures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """One model's or key's figures per bucket. `key` is the model slug or the API key's id ("" for
    requests without a key: the dashboard chat and docs playground); None is the folded rest."""

    key: str | None
    buckets: tuple[UsageFigures, ...]

    @property
    def total(self) -> UsageFigures:
        return sum(self.buckets, UsageFigures())


@dataclass(frozen=True, slots=True)
class UsageReport:
    period: str
    by: Breakdown
    bucket_starts: tuple[datetime, ...]  # oldest first, every bucket of the window (idle ones included)
    series: tuple[UsageSeries, ...]  # dearest first

    @property
    def total(self) -> UsageFigures:
        return sum((series.total for series in self.series), UsageFigures())

    def bucket_totals(self) -> list[UsageFigures]:
        return [
            sum((series.buckets[i] for series in self.series), UsageFigures())
            for i in range(len(self.bucket_starts))
        ]


def _bucket_starts(period: str, count: int, now: datetime) -> tuple[datetime, ...]:
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    step = timedelta(hours=1)
    if period == UsagePeriod.DAY:
        last, step = last.replace(hour=0), timedelta(days=1)
    return tuple(last - step * n for n in range(count - 1, -1, -1))


def usage_report(
    *,
    workspace_id: uuid.UUID,
    range_name: str,
    by: Breakdown,
    fold: bool = True,
    now: datetime | None = None,
) -> UsageReport:
    """The workspace's usage in the window `range_name` (a USAGE_RANGES key), per bucket and per model or
    key; with `fold`, the series beyond the MAX_SERIES dearest are summed into one (key None)."""
    period, count = USAGE_RANGES[range_name]
    starts = _bucket_starts(period, count, now or timezone.now())
    position = {start: i for i, start in enumerate(starts)}
    dimension = "model" if by == "model" else "api_key_id"
    rows = (
        UsageRollup.objects.filter(
            workspace_id=workspace_id,
            period=period,
            bucket_start__gte=starts[0],
            bucket_start__lte=starts[-1],
        )
        .values("bucket_start", dimension)
        .annotate(**{name: Sum(name) for name in USAGE_SUMS})
        .order_by()
    )
    by_key: dict[str, list[UsageFigures]] = {}
    for row in rows:
        key = "" if row[dimension] is None else str(row[dimension])
        buckets = by_key.setdefault(key, [UsageFigures()] * count)
        i = position[row["bucket_start"].astimezone(UTC)]
        buckets[i] = buckets[i] + UsageFigures(*(row[name] or 0 for name in USAGE_SUMS))
    series = [UsageSeries(key, tuple(buckets)) for key, buckets in by_key.items()]
    series.sort(key=lambda s: (-s.total.cost_micro_usd, -s.total.requests, s.key or ""))
    if fold and len(series) > MAX_SERIES:
        rest = series[MAX_SERIES:]
        folded = tuple(sum((s.buckets[i] for s in rest), UsageFigures()) for i in range(count))
        series = [*series[:MAX_SERIES], UsageSeries(None, folded)]
    return UsageReport(period=period, by=by, bucket_starts=starts, series=tuple(series))

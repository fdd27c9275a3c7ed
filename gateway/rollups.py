"""Usage rollups (design §6): generation records summed per UTC hour and day, per workspace, key, model,
provider and outcome, into billing's `UsageRollup` — what the dashboard's charts and the catalog's token
volumes read instead of scanning the records.

Idempotent by construction: a run recomputes whole hours — the last `LOOKBACK_HOURS`, reaching further back
when the latest hour rolled is older (a beat that stopped catches up; the first run on a deployment rolls
up every record there is) — from the records and replaces what was there, then recomputes the days those
hours fall in from their hour rows. Running it twice changes nothing, and a record that reaches PostgreSQL
late (the Redis meter's writer catching up, a settlement the journal's keeper retried) is counted when its
hour is next recomputed. A record older than the lookback when it arrives (only after an outage longer than
that) is counted by `manage.py usage_rollup --since …`, which recomputes from any hour on. Runs take a
PostgreSQL advisory lock, so two never interleave their deletes and inserts.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from billing.models import USAGE_DIMENSIONS, USAGE_SUMS, UsagePeriod, UsageRollup
from billing.services import usage_days_recompute, usage_rollups_replace
from gateway.models import Generation

LOOKBACK_HOURS = 3  # beat runs this every minute; a record written up to 3 h late is still counted
_LOCK_KEY = 0x7573616765  # "usage": the advisory lock's key


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return hour_start(moment).replace(hour=0)


def roll_up_usage(*, now: datetime | None = None, since: datetime | None = None) -> int:
    """Recompute the hour rows from `since` (default: the last LOOKBACK_HOURS) to the current hour, and the
    day rows of the days they fall in. Returns how many hour rows were written."""
    end = hour_start(now or timezone.now()) + timedelta(hours=1)
    start = hour_start(since) if since is not None else _scheduled_start(end)
    with transaction.atomic():
        _lock()
        hours = usage_rollups_replace(
            period=UsagePeriod.HOUR, start=start, end=end, rows=_hour_rows(start, end)
        )
        last_hour = end - timedelta(hours=1)
        usage_days_recompute(first_day=day_start(start), end_day=day_start(last_hour) + timedelta(days=1))
    return hours


def _scheduled_start(end: datetime) -> datetime:
    """The lookback before the current hour, or before the latest hour rolled if that is older; with
    nothing rolled yet, the first record's hour."""
    lookback = timedelta(hours=LOOKBACK_HOURS)
    hours = UsageRollup.objects.filter(period=UsagePeriod.HOUR)
    latest = hours.aggregate(latest=Max("bucket_start"))["latest"]
    if latest is not None:
        return min(end - lookback, latest + timedelta(hours=1) - lookback)
    first = Generation.objects.aggregate(first=Min("created_at"))["first"]
    return min(end - lookback, hour_start(first)) if first is not None else end - lookback


def _hour_rows(start: datetime, end: datetime) -> list[UsageRollup]:
    sums = {field: Sum(field) for field in USAGE_SUMS if field != "requests"}
    rows = (
        Generation.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour", *USAGE_DIMENSIONS)
        .annotate(requests=Count("id"), **sums)
        .order_by()
    )
    return [UsageRollup(period=UsagePeriod.HOUR, bucket_start=row.pop("hour"), **row) for row in rows]


def _lock() -> None:
    """One run at a time (PostgreSQL; SQLite has one writer anyway), until this transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])

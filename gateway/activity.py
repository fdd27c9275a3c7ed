"""The dashboard's activity log: a workspace's generation records, newest first, filtered and paged by cursor.

The gateway owns `Generation`, so its pages are the gateway's (gateway/views.py) in the console's frame.
A cursor (the last row's time and id) instead of an offset keeps every page one index range scan on
(workspace, -created_at, -id) however deep the reader goes, at millions of rows.
"""

import base64
import binascii
import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from core.errors import ErrorCode
from gateway.ingress.registry import recorded_format_names
from gateway.models import Generation, GenerationStatus, Source

PAGE_SIZE = 50

# What each taxonomy code tells the workspace, in words (the detail page shows it beside the code).
ERROR_MEANINGS: dict[str, str] = {
    ErrorCode.PROVIDER_AUTH: "The provider refused the gateway's credentials. Nothing was billed.",
    ErrorCode.PROVIDER_RATE_LIMIT: "The provider is rate limiting; retry after a pause.",
    ErrorCode.PROVIDER_OVERLOADED: "The provider was overloaded; retry later or choose another model.",
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: "The prompt and max_tokens exceed the model's context length.",
    ErrorCode.CONTENT_FILTER: "The provider's content filter stopped the answer.",
    ErrorCode.PROVIDER_TIMEOUT: "The provider took too long to answer.",
    ErrorCode.PROVIDER_UNAVAILABLE: "No provider of this model could be reached.",
    ErrorCode.INSUFFICIENT_CREDITS: "The workspace's balance could not cover the request's worst case. "
    "Add credits, or lower max_tokens.",
    ErrorCode.KEY_LIMIT_EXCEEDED: "The API key's credit limit was reached; raise it on the key's page.",
    ErrorCode.MODEL_NOT_ALLOWED: "The API key's model allowlist does not include this model.",
    ErrorCode.INVALID_API_KEY: "The API key is unknown, revoked or expired.",
    ErrorCode.WORKSPACE_LOCKED: "An operator locked the workspace.",
    ErrorCode.RATE_LIMIT_EXCEEDED: "The API key's requests-per-minute limit was reached.",
    ErrorCode.INVALID_REQUEST: "The request was malformed.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body was too large.",
    ErrorCode.INTERNAL_ERROR: "The gateway failed on this request and did not bill it.",
}


@dataclass(frozen=True)
class ActivityFilters:
    """What the reader narrowed the log to; each None (or empty) means any."""

    api_key_id: int | None = None
    model: str = ""
    provider: str = ""
    ingress_format: str = ""
    source: str = ""
    status: str = ""
    since: datetime.date | None = None  # the first UTC day shown
    until: datetime.date | None = None  # the last UTC day shown

    def as_query(self) -> dict[str, str]:
        """The filters as the page's query parameters (what the next-page link keeps)."""
        query = {
            "key": str(self.api_key_id or ""),
            "model": self.model,
            "provider": self.provider,
            "format": self.ingress_format,
            "source": self.source,
            "status": self.status,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {name: value for name, value in query.items() if value}


def activity_filters_parse(query: Mapping[str, str]) -> tuple[ActivityFilters, dict[str, str]]:
    """The filters from a page's query, and an error message per parameter that could not be read (the
    page says so and ignores it, rather than failing)."""
    errors: dict[str, str] = {}

    def choice(name: str, allowed: list[str]) -> str:
        value = query.get(name, "").strip()
        if value and value not in allowed:
            errors[name] = f"must be one of {', '.join(allowed)}"
            return ""
        return value

    def day(name: str) -> datetime.date | None:
        value = query.get(name, "").strip()
        if not value:
            return None
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            errors[name] = "must be a date, YYYY-MM-DD"
            return None

    api_key_id = None
    if key := query.get("key", "").strip():
        if key.isdigit():
            api_key_id = int(key)
        else:
            errors["key"] = "must be one of the workspace's keys"
    filters = ActivityFilters(
        api_key_id=api_key_id,
        model=query.get("model", "").strip()[:200],
        provider=query.get("provider", "").strip()[:100],
        ingress_format=choice("format", recorded_format_names()),
        source=choice("source", list(Source.values)),
        status=choice("status", list(GenerationStatus.values)),
        since=day("since"),
        until=day("until"),
    )
    return filters, errors


@dataclass(frozen=True)
class ActivityPage:
    rows: list[Generation]
    next_cursor: str | None  # None on the last page


def _filtered(workspace_id: uuid.UUID, filters: ActivityFilters) -> QuerySet[Generation]:
    records = Generation.objects.filter(workspace_id=workspace_id)
    exact = {
        "api_key_id": filters.api_key_id,
        "model": filters.model,
        "provider": filters.provider,
        "ingress_format": filters.ingress_format,
        "source": filters.source,
        "status": filters.status,
    }
    records = records.filter(**{field: value for field, value in exact.items() if value})
    if filters.since is not None:
        records = records.filter(created_at__gte=_day_start(filters.since))
    if filters.until is not None:
        records = records.filter(created_at__lt=_day_start(filters.until + datetime.timedelta(days=1)))
    return records


def _day_start(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def activity_page(
    *, workspace_id: uuid.UUID, filters: ActivityFilters, cursor: str = "", size: int = PAGE_SIZE
) -> ActivityPage:
    """One page of the workspace's records matching `filters`, newest first, after `cursor` (from the
    previous page; an unreadable one starts from the newest)."""
    records = _filtered(workspace_id, filters).select_related("api_key").order_by("-created_at", "-id")
    if (after := cursor_decode(cursor)) is not None:
        created_at, row_id = after
        records = records.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=row_id))
    rows = list(records[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return ActivityPage(rows=rows, next_cursor=cursor_encode(rows[-1]) if more else None)


def cursor_encode(record: Generation) -> str:
    raw = f"{record.created_at.isoformat()}|{record.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime.datetime, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, row_id = raw.partition("|")
        created_at = datetime.datetime.fromisoformat(moment)
        if timezone.is_naive(created_at):
            return None
        return created_at, int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def activity_record(*, workspace_id: uuid.UUID, request_id: str) -> Generation | None:
    """One record of the workspace; another workspace's is None, as if it did not exist."""
    return (
        Generation.objects.filter(workspace_id=workspace_id, request_id=request_id)
        .select_related("api_key")
        .first()
    )


def error_meaning(code: str) -> str:
    return ERROR_MEANINGS.get(code, "")

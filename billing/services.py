"""Ledger services: every change to a workspace's balance goes through `ledger_post`; and the usage rollups'
writes.

A balance change is one conditional UPDATE on the account row inside the same transaction that
writes the ledger entry, so the balance always equals the sum of the entries (design §4.3).
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# `created_by` is AUTH_USER_MODEL, console's User: billing sits below console, so it names the base class.
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from billing import mirror
from billing.errors import InvalidAmount, ReasonRequired
from billing.models import (
    USAGE_DIMENSIONS,
    USAGE_SUMS,
    CreditAccount,
    EntryKind,
    LedgerEntry,
    UsagePeriod,
    UsageRollup,
)
from core.bulk import copy_rows

CREDIT_KINDS = frozenset({EntryKind.PURCHASE, EntryKind.GRANT})
DEBIT_KINDS = frozenset({EntryKind.USAGE, EntryKind.REFUND})


def account_open(*, workspace_id: uuid.UUID) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(workspace_id=workspace_id)
    return account


def _check_sign(kind: str, amount_micro_usd: int) -> None:
    if not isinstance(amount_micro_usd, int) or isinstance(amount_micro_usd, bool):
        raise TypeError("amount_micro_usd must be an int (micro-USD)")
    if amount_micro_usd == 0:
        raise InvalidAmount("a ledger entry must change the balance")
    if kind in CREDIT_KINDS and amount_micro_usd < 0:
        raise InvalidAmount(f"a {kind} adds credits: the amount must be positive")
    if kind in DEBIT_KINDS and amount_micro_usd > 0:
        raise InvalidAmount(f"a {kind} removes credits: the amount must be negative")


def ledger_post(
    *,
    workspace_id: uuid.UUID,
    kind: str,
    amount_micro_usd: int,
    reason: str = "",
    reference: str = "",
    api_key_id: int | None = None,
    created_by: AbstractBaseUser | None = None,
    metadata: dict[str, Any] | None = None,
    release_reserved_micro_usd: int = 0,
) -> LedgerEntry:
    """Apply one signed amount to a workspace's balance and record it. Idempotent on (kind, reference).

    `release_reserved_micro_usd` lets settlement release a reservation in the same UPDATE.
    """
    _check_sign(kind, amount_micro_usd)
    if reference:
        existing = LedgerEntry.objects.filter(kind=kind, reference=reference).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            return _post(
                workspace_id=workspace_id,
                kind=kind,
                amount_micro_usd=amount_micro_usd,
                reason=reason,
                reference=reference,
                api_key_id=api_key_id,
                created_by=created_by,
                metadata=metadata or {},
                release_reserved_micro_usd=release_reserved_micro_usd,
            )
    except IntegrityError:
        # A concurrent post with the same reference won; the whole transaction (balance included) rolled back.
        if reference:
            existing = LedgerEntry.objects.filter(kind=kind, reference=reference).first()
            if existing is not None:
                return existing
        raise


def _post(*, workspace_id: uuid.UUID, release_reserved_micro_usd: int, **fields: Any) -> LedgerEntry:
    account_open(workspace_id=workspace_id)
    CreditAccount.objects.filter(workspace_id=workspace_id).update(
        balance_micro_usd=F("balance_micro_usd") + fields["amount_micro_usd"],
        reserved_micro_usd=F("reserved_micro_usd") - release_reserved_micro_usd,
    )
    # The UPDATE holds the row lock until commit, so this read is exactly this entry's result.
    balance_after = CreditAccount.objects.values_list("balance_micro_usd", flat=True).get(
        workspace_id=workspace_id
    )
    if fields["kind"] != EntryKind.USAGE:
        # Usage is debited in the hot path's mirror already; any other change must reach it (design §4).
        mirror.account_invalidate_on_commit(workspace_id)
    return LedgerEntry.objects.create(
        workspace_id=workspace_id, balance_after_micro_usd=balance_after, **fields
    )


def credits_grant(
    *,
    workspace_id: uuid.UUID,
    amount_micro_usd: int,
    reason: str,
    created_by: AbstractBaseUser | None = None,
    reference: str = "",
) -> LedgerEntry:
    return ledger_post(
        workspace_id=workspace_id,
        kind=EntryKind.GRANT,
        amount_micro_usd=amount_micro_usd,
        reason=reason,
        reference=reference,
        created_by=created_by,
    )


def credits_adjust(
    *, workspace_id: uuid.UUID, amount_micro_usd: int, reason: str, created_by: AbstractBaseUser | None = None
) -> LedgerEntry:
    """An operator's correction, either sign. A reason is required: the ledger explains every change."""
    if not reason.strip():
        raise ReasonRequired("an adjustment needs a reason")
    return ledger_post(
        workspace_id=workspace_id,
        kind=EntryKind.ADJUSTMENT,
        amount_micro_usd=amount_micro_usd,
        reason=reason.strip(),
        created_by=created_by,
    )


def ledger_sum(*, workspace_id: uuid.UUID) -> int:
    """The sum of a workspace's ledger entries; equals its account balance (design §4.3)."""
    total = LedgerEntry.objects.filter(workspace_id=workspace_id).aggregate(total=Sum("amount_micro_usd"))[
        "total"
    ]
    return total or 0


def usage_debits_post(debits: list[tuple[Any, str, int | None, int, dict[str, Any]]]) -> int:
    """Post many usage debits at once: (workspace id, request id, api key id, cost, metadata) each.

    For the Redis hot path's batch writer (design §4): one UPDATE per workspace, in a stable order so
    concurrent writers cannot deadlock, and each entry's balance_after as if posted one by one. Runs inside
    the caller's transaction; request ids must be new (the caller skips those already written).
    Returns the number of entries written.
    """
    by_workspace: dict[Any, list[tuple[str, int | None, int, dict[str, Any]]]] = {}
    for workspace_id, request_id, api_key_id, cost, metadata in debits:
        if cost > 0:
            by_workspace.setdefault(workspace_id, []).append((request_id, api_key_id, cost, metadata))
    entries = []
    posted_at = timezone.now()  # one moment for the batch: every column given, COPY reads each row in C
    for workspace_id in sorted(by_workspace, key=str):
        rows = by_workspace[workspace_id]
        total = sum(cost for _, _, cost, _ in rows)
        account_open(workspace_id=workspace_id)
        CreditAccount.objects.filter(workspace_id=workspace_id).update(
            balance_micro_usd=F("balance_micro_usd") - total
        )
        balance = CreditAccount.objects.values_list("balance_micro_usd", flat=True).get(
            workspace_id=workspace_id
        )
        balance_after = balance + total
        for request_id, api_key_id, cost, metadata in rows:
            balance_after -= cost
            entries.append(
                {
                    "workspace_id": workspace_id,
                    "kind": EntryKind.USAGE.value,
                    "amount_micro_usd": -cost,
                    "balance_after_micro_usd": balance_after,
                    "reference": request_id,
                    "reason": "",
                    "api_key_id": api_key_id,
                    "created_by_id": None,
                    "metadata": metadata,
                    "created_at": posted_at,
                }
            )
    copy_rows(LedgerEntry, entries)
    return len(entries)


# --- Usage rollups (written by gateway/rollups.py from generation records) ---------------------------
def usage_rollups_replace(*, period: str, start: datetime, end: datetime, rows: Iterable[UsageRollup]) -> int:
    """Replace the `period` rows whose bucket starts in [start, end) with `rows` (unsaved). Run inside the
    caller's transaction, so readers see the old rows or the new ones, never a mix."""
    UsageRollup.objects.filter(period=period, bucket_start__gte=start, bucket_start__lt=end).delete()
    return len(UsageRollup.objects.bulk_create(rows, batch_size=1_000))


def usage_days_recompute(*, first_day: datetime, end_day: datetime) -> int:
    """The day rows of the UTC days in [first_day, end_day) as the sums of their hour rows."""
    rows = (
        UsageRollup.objects.filter(
            period=UsagePeriod.HOUR, bucket_start__gte=first_day, bucket_start__lt=end_day
        )
        .annotate(day=TruncDay("bucket_start", tzinfo=UTC))
        .values("day", *USAGE_DIMENSIONS)
        .annotate(**{field: Sum(field) for field in USAGE_SUMS})
        .order_by()  # the model's ordering would split the groups
    )
    days = [UsageRollup(period=UsagePeriod.DAY, bucket_start=row.pop("day"), **row) for row in rows]
    return usage_rollups_replace(period=UsagePeriod.DAY, start=first_day, end=end_day, rows=days)

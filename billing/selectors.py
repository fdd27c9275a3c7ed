"""Billing reads for pages, APIs and admin.

With the Redis meter (design §4) the newest debits and the holds of requests in flight live in Redis for a
moment before PostgreSQL has them; the reads users see add them, so a balance never looks stale.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from billing import mirror
from billing.key_spend import limit_period_key, limit_period_start
from billing.models import CreditAccount, EntryKind, KeySpend, LedgerEntry, UsagePeriod, UsageRollup


def account_for(*, workspace_id: uuid.UUID) -> CreditAccount:
    """The workspace's account as its owner sees it (an unsaved zero account if it was never opened):
    debits not yet written to PostgreSQL are taken off the balance, and holds in Redis count as reserved.
    For display only; never save it."""
    account, fields = mirror.with_pending(
        mirror.workspace_hash(workspace_id), lambda: _account_row(workspace_id)
    )
    return _with_pending(account, fields)


def _account_row(workspace_id: uuid.UUID) -> CreditAccount:
    return CreditAccount.objects.filter(workspace_id=workspace_id).first() or CreditAccount(
        workspace_id=workspace_id
    )


def _with_pending(account: CreditAccount, fields: dict[bytes, bytes]) -> CreditAccount:
    unflushed, held = mirror.account_pending(fields)
    account.balance_micro_usd -= unflushed
    account.reserved_micro_usd += held
    return account


@dataclass(frozen=True)
class KeySpendSeen:
    """An API key's spend as its owner sees it: what PostgreSQL has plus what is still only in Redis."""

    used_micro_usd: int  # in the current limit period
    reserved_micro_usd: int
    lifetime_micro_usd: int
    limit_micro_usd: int | None

    @property
    def remaining_micro_usd(self) -> int | None:
        """What the key may still spend in this period; None without a limit."""
        if self.limit_micro_usd is None:
            return None
        return max(0, self.limit_micro_usd - self.used_micro_usd - self.reserved_micro_usd)


def key_used_in_period(*, api_key_id: int, reset: str, now: datetime | None = None) -> int:
    """PostgreSQL's spend of the key in its current limit period (0 if that period has not started)."""
    row = KeySpend.objects.filter(api_key_id=api_key_id).values("used_micro_usd", "period_start").first()
    if row is None:
        return 0
    current = limit_period_start(reset, now or timezone.now())
    if current is not None and row["period_start"] != current:
        return 0
    return row["used_micro_usd"]


def key_spend_seen(
    *, workspace_id: uuid.UUID, api_key_id: int, limit_micro_usd: int | None, reset: str
) -> KeySpendSeen:
    """The key's spend with its charges and holds still in Redis added (its mirror is in its workspace's
    shard)."""
    now = timezone.now()

    def read_postgres() -> tuple[KeySpend, int]:
        spend = KeySpend.objects.filter(api_key_id=api_key_id).first() or KeySpend(api_key_id=api_key_id)
        return spend, key_used_in_period(api_key_id=api_key_id, reset=reset, now=now)

    (spend, used), fields = mirror.with_pending(mirror.key_hash(workspace_id, api_key_id), read_postgres)
    unflushed, in_period, held = mirror.key_pending(fields, limit_period_key(reset, now))
    return KeySpendSeen(
        used_micro_usd=used + in_period,
        reserved_micro_usd=spend.reserved_micro_usd + held,
        lifetime_micro_usd=spend.lifetime_micro_usd + unflushed,
        limit_micro_usd=limit_micro_usd,
    )


def account_balance(*, workspace_id: uuid.UUID) -> int:
    """The balance PostgreSQL has (0 for a workspace without an account): what the Redis mirror loads."""
    balance = (
        CreditAccount.objects.filter(workspace_id=workspace_id)
        .values_list("balance_micro_usd", flat=True)
        .first()
    )
    return balance or 0


def accounts_existing(*, workspace_ids: set[str]) -> set[str]:
    """Those of these workspaces that have a credit account (a deleted workspace has none)."""
    return {
        str(w)
        for w in CreditAccount.objects.filter(workspace_id__in=workspace_ids).values_list(
            "workspace_id", flat=True
        )
    }


def ledger_entries(*, workspace_id: uuid.UUID) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(workspace_id=workspace_id).select_related("created_by", "api_key")


@dataclass(frozen=True)
class WorkspaceCredits:
    """A workspace's credits as its owner sees them, in micro-USD."""

    balance_micro_usd: int
    reserved_micro_usd: int
    available_micro_usd: int
    total_usage_micro_usd: int

    @property
    def total_credits_micro_usd(self) -> int:
        """Credits ever added: the balance plus everything used."""
        return self.balance_micro_usd + self.total_usage_micro_usd


def workspace_credits(*, workspace_id: uuid.UUID) -> WorkspaceCredits:
    """The balance, holds and total usage (ledger usage debits plus those still in Redis) of a workspace."""

    def read_postgres() -> tuple[CreditAccount, int]:
        debited = LedgerEntry.objects.filter(workspace_id=workspace_id, kind=EntryKind.USAGE).aggregate(
            total=Sum("amount_micro_usd")
        )["total"]
        return _account_row(workspace_id), -(debited or 0)

    (row, used), fields = mirror.with_pending(mirror.workspace_hash(workspace_id), read_postgres)
    account = _with_pending(row, fields)
    return WorkspaceCredits(
        balance_micro_usd=account.balance_micro_usd,
        reserved_micro_usd=account.reserved_micro_usd,
        available_micro_usd=account.available_micro_usd,
        total_usage_micro_usd=used + mirror.account_pending(fields)[0],
    )


# --- Usage rollups ------------------------------------------------------------------------------------
def completed_tokens_by_model(*, since: datetime) -> dict[str, int]:
    """Every model's prompt + completion tokens of completed requests, platform-wide, from the hour rows
    of the hours starting at `since` or later: {slug: tokens}."""
    rows = (
        UsageRollup.objects.filter(period=UsagePeriod.HOUR, status="completed", bucket_start__gte=since)
        .values("model")
        .annotate(tokens=Sum(F("tokens_prompt") + F("tokens_completion")))
        .order_by()
    )
    return {row["model"]: int(row["tokens"] or 0) for row in rows}


def completed_tokens_by_day(*, model: str, first_day: datetime) -> dict[date, int]:
    """The model's prompt + completion tokens of completed requests per UTC day from `first_day` on, from
    the day rows (days without traffic are absent)."""
    rows = (
        UsageRollup.objects.filter(
            period=UsagePeriod.DAY, status="completed", model=model, bucket_start__gte=first_day
        )
        .values("bucket_start")
        .annotate(tokens=Sum(F("tokens_prompt") + F("tokens_completion")))
        .order_by()
    )
    return {row["bucket_start"].astimezone(UTC).date(): int(row["tokens"] or 0) for row in rows}

"""Billing reads for pages, APIs and admin.

With the Redis meter (DESIGN §4) the newest debits and the holds of requests in flight live in Redis for a
moment before PostgreSQL has them; the reads users see add them, so a balance never looks stale.
"""

from dataclasses import dataclass

from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry
from billing.reservations import limit_period_key
from console.models import ApiKey


def account_for(*, workspace_id) -> CreditAccount:
    """The workspace's account as its owner sees it (an unsaved zero account if it was never opened):
    debits not yet written to PostgreSQL are taken off the balance, and holds in Redis count as reserved.
    For display only; never save it."""
    account = CreditAccount.objects.filter(workspace_id=workspace_id).first() or CreditAccount(
        workspace_id=workspace_id
    )
    unflushed, held = mirror.account_pending(workspace_id)
    account.balance_micro_usd -= unflushed
    account.reserved_micro_usd += held
    return account


def usage_unflushed(*, workspace_id) -> int:
    """Usage settled in Redis and not yet in the ledger."""
    return mirror.account_pending(workspace_id)[0]


def api_key_as_seen(key: ApiKey) -> ApiKey:
    """The key with its charges and holds still in Redis added to its usage figures. Never save it."""
    unflushed, in_period, held = mirror.key_pending(key.pk, limit_period_key(key.limit_reset, timezone.now()))
    key.usage_micro_usd += unflushed
    key.limit_used_micro_usd += in_period
    key.limit_reserved_micro_usd += held
    return key


def ledger_entries(*, workspace_id) -> QuerySet[LedgerEntry]:
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


def workspace_credits(*, workspace_id) -> WorkspaceCredits:
    """The balance, holds and total usage (ledger usage debits plus those still in Redis) of a workspace."""
    account = account_for(workspace_id=workspace_id)
    debited = LedgerEntry.objects.filter(workspace_id=workspace_id, kind=EntryKind.USAGE).aggregate(
        total=Sum("amount_micro_usd")
    )["total"]
    return WorkspaceCredits(
        balance_micro_usd=account.balance_micro_usd,
        reserved_micro_usd=account.reserved_micro_usd,
        available_micro_usd=account.available_micro_usd,
        total_usage_micro_usd=-(debited or 0) + usage_unflushed(workspace_id=workspace_id),
    )

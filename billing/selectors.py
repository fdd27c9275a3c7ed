"""Billing reads for pages, APIs and admin."""

from django.db.models import QuerySet

from billing.models import CreditAccount, LedgerEntry


def account_for(*, workspace_id) -> CreditAccount:
    """The workspace's account (an unsaved zero account if it was never opened)."""
    return CreditAccount.objects.filter(workspace_id=workspace_id).first() or CreditAccount(
        workspace_id=workspace_id
    )


def ledger_entries(*, workspace_id) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(workspace_id=workspace_id).select_related("created_by", "api_key")

"""Console work for Celery: Stripe's webhook events applied, auto top-ups and low-balance e-mails. Billing
says what money means; the console owns workspaces and their owners (a dispute locks the workspace here, and
the owners are e-mailed from here)."""

import uuid

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from billing.models import StripeCustomer
from billing.money import format_usd
from billing.payments import TopUp, auto_top_up_run, low_balance_crossed
from billing.selectors import account_for
from billing.stripe_events import stripe_event_apply
from console.models import Membership, Role, Workspace
from console.services.workspaces import workspace_lock


@shared_task(name="console.tasks.process_stripe_event", autoretry_for=(Exception,), retry_backoff=True,
             max_retries=10)  # fmt: skip
def process_stripe_event(event_id: str) -> bool:
    """Apply one stored webhook event, exactly once whatever the number of deliveries. True: applied now."""
    with transaction.atomic():
        outcome = stripe_event_apply(event_id=event_id)
        if outcome is not None and outcome.lock_workspace_id is not None:
            workspace = Workspace.objects.get(pk=outcome.lock_workspace_id)
            workspace_lock(workspace=workspace, reason=outcome.lock_reason)
    return outcome is not None


@shared_task(name="console.tasks.auto_top_up")
def auto_top_up(workspace_id: str) -> str:
    """After a settlement took the workspace below its threshold: tell the owners once per crossing, and
    charge the saved card once (billing keeps it to one in flight); a declined card turns it off, said so."""
    workspace = Workspace.objects.get(pk=uuid.UUID(str(workspace_id)))
    if low_balance_crossed(workspace_id=workspace.pk):
        _tell_owners(workspace, "Your HyperInfer balance is low", "console/email/low_balance.txt")
    outcome = auto_top_up_run(workspace_id=workspace.pk)
    if outcome == TopUp.DECLINED:
        _tell_owners(
            workspace, "Auto top-up failed: your card was declined", "console/email/auto_top_up_declined.txt"
        )
    return outcome.value


@shared_task(name="console.tasks.auto_top_up_sweep")
def auto_top_up_sweep() -> int:
    """The beat's backstop: every workspace with a saved card looked at, in case a trigger was missed."""
    workspace_ids = list(StripeCustomer.objects.values_list("workspace_id", flat=True))
    for workspace_id in workspace_ids:
        auto_top_up.delay(str(workspace_id))
    return len(workspace_ids)


def _tell_owners(workspace: Workspace, subject: str, template: str) -> None:
    owners = list(
        Membership.objects.filter(workspace=workspace, role=Role.OWNER).values_list("user__email", flat=True)
    )
    customer = StripeCustomer.objects.filter(workspace=workspace).first()
    account = account_for(workspace_id=workspace.pk)
    context = {
        "workspace": workspace,
        "balance": format_usd(account.available_micro_usd),
        "threshold": format_usd(customer.auto_top_up_threshold_micro_usd) if customer else "",
        "amount": format_usd(customer.auto_top_up_amount_micro_usd) if customer else "",
        "auto_top_up": bool(customer and customer.auto_top_up),
        "card": f"{customer.card_brand} •••• {customer.card_last4}" if customer else "",
        "site": settings.SITE_URL,
    }
    if owners:
        send_mail(subject, render_to_string(template, context), None, owners)

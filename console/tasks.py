"""Console work for Celery: Stripe's webhook events applied (billing says what they mean; a dispute locks the
workspace here, since workspaces are the console's)."""

from celery import shared_task
from django.db import transaction

from billing.payments import stripe_event_apply
from console.models import Workspace
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

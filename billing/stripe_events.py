"""Stripe's webhook events: a delivery verified by its signature and stored once by the event's id
(`webhook_receive`), then applied once by a Celery task (`stripe_event_apply`, console.tasks) — design §4,
invariant 5.

Separate from billing/payments.py and billing/refunds.py because it is Stripe reporting, not us asking: a
payment's success or failure, a refund, a dispute may arrive in any order and any number of times, and each
is turned into the payment or refund rules those modules hold.
"""

import logging
import uuid
from dataclasses import dataclass

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_api
from billing.errors import WebhookRejected
from billing.models import Payment, StripeEvent
from billing.payments import Json, payment_sync
from billing.refunds import refund_apply

logger = logging.getLogger(__name__)


def webhook_receive(payload: bytes, signature: str) -> StripeEvent | None:
    """Verify and store a webhook delivery. The stored event, to apply; None when it came before."""
    try:
        event = stripe_api.webhook_event(payload, signature)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise WebhookRejected(str(exc)) from exc
    try:
        with transaction.atomic():
            return StripeEvent.objects.create(event_id=event["id"], type=event["type"], payload=event)
    except IntegrityError:
        return None


@dataclass(frozen=True)
class EventOutcome:
    """What an applied event asks of the layers above billing: a workspace to lock, and why."""

    lock_workspace_id: uuid.UUID | None = None
    lock_reason: str = ""


def stripe_event_apply(*, event_id: str) -> EventOutcome | None:
    """Apply a stored event once, in the caller's transaction (its row locked). None: applied before."""
    event = StripeEvent.objects.select_for_update().get(event_id=event_id)
    if event.processed_at is not None:
        return None
    obj = event.payload["data"]["object"]
    outcome = EventOutcome()
    if event.type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        if (obj.get("metadata") or {}).get("workspace_id"):
            payment_sync(obj)
    elif event.type == "charge.refunded":
        _charge_refunded(obj)
    elif event.type == "charge.dispute.created":
        outcome = _dispute_created(obj)
    event.processed_at = timezone.now()
    event.save(update_fields=["processed_at"])
    return outcome


def _payment_of_intent(payment_intent_id: str) -> Payment | None:
    payment = Payment.objects.filter(payment_intent_id=payment_intent_id).first()
    if payment is None:  # the refund or dispute came before the payment's own event: ask Stripe
        intent = stripe_api.payment_intent_retrieve(payment_intent_id)
        if (intent.get("metadata") or {}).get("workspace_id"):
            payment = payment_sync(intent)
    return payment


def _charge_refunded(charge: Json) -> None:
    payment = _payment_of_intent(str(charge.get("payment_intent") or ""))
    if payment is None:
        logger.warning("stripe: a refund of %s, which is no payment for credits", charge.get("id"))
        return
    for refund in (charge.get("refunds") or {}).get("data") or []:
        if refund.get("status") in ("succeeded", "pending", None):
            refund_apply(payment=payment, refund=refund)


def _dispute_created(dispute: Json) -> EventOutcome:
    payment = _payment_of_intent(str(dispute.get("payment_intent") or ""))
    if payment is None:
        return EventOutcome()
    reason = f"Payment {payment.payment_intent_id} disputed ({dispute.get('reason') or 'no reason given'})"
    return EventOutcome(lock_workspace_id=payment.workspace_id, lock_reason=reason)

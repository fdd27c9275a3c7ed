"""Money in: credits bought by card with Stripe (design §4, invariant 5).

A purchase is a `purchase` ledger entry whose reference is the PaymentIntent's id, and a refund a `refund`
entry whose reference is the Stripe refund's id: the ledger's unique (kind, reference) makes every replay a
no-op, so the browser's return, the webhook and a retry may all report the same payment and it is credited
once, in whatever order they come. Webhook events are stored once by their id and applied by a Celery task.
"""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_api
from billing.errors import InvalidAmount, PaymentDeclined, PaymentNotFound, WebhookRejected
from billing.models import (
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentKind,
    PaymentStatus,
    StripeCustomer,
    StripeEvent,
)
from billing.money import MICRO_PER_USD
from billing.services import ledger_post

logger = logging.getLogger(__name__)

Json = dict[str, Any]
MICRO_PER_CENT = MICRO_PER_USD // 100
_STATUSES = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_payment_method": PaymentStatus.FAILED,  # declined, or 3-D Secure failed
    "canceled": PaymentStatus.FAILED,
}


def credits_amount(value: str) -> int:
    """A purchase amount typed in dollars, as micro-USD: whole cents, within the configured bounds."""
    try:
        dollars = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation as exc:
        raise InvalidAmount(f"amount: {value!r} is not an amount in dollars") from exc
    if not dollars.is_finite() or dollars != dollars.quantize(Decimal("0.01")):
        raise InvalidAmount("amount: dollars and cents only")
    low, high = settings.CREDITS_MIN_USD, settings.CREDITS_MAX_USD
    if not low <= dollars <= high:
        raise InvalidAmount(f"amount: between ${low} and ${high:,} at a time")
    return int(dollars * MICRO_PER_USD)


# --- The customer and the card -----------------------------------------------------------------
def stripe_customer_for(*, workspace_id: uuid.UUID, email: str) -> StripeCustomer:
    """The workspace's Stripe customer, created on first use (once, even when two pages ask at once)."""
    existing = StripeCustomer.objects.filter(workspace_id=workspace_id).first()
    if existing is not None:
        return existing
    customer = stripe_api.customer_create(email=email, workspace_id=str(workspace_id))
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(workspace_id=workspace_id, customer_id=customer["id"])
    except IntegrityError:
        return StripeCustomer.objects.get(workspace_id=workspace_id)


def card_setup_start(*, workspace_id: uuid.UUID, email: str) -> str:
    """The client secret of a SetupIntent: the browser confirms the card with it (Stripe.js)."""
    customer = stripe_customer_for(workspace_id=workspace_id, email=email)
    return str(stripe_api.setup_intent_create(customer_id=customer.customer_id)["client_secret"])


def _card_of(intent: Json) -> tuple[str, str]:
    charge = intent.get("latest_charge")
    details = charge.get("payment_method_details") if isinstance(charge, dict) else None
    card = (details or {}).get("card") or {}
    if not card and intent.get("payment_method"):
        method = intent["payment_method"]
        method = method if isinstance(method, dict) else stripe_api.payment_method_retrieve(method)
        card = method.get("card") or {}
    return str(card.get("brand") or ""), str(card.get("last4") or "")


# --- Payments ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentStarted:
    payment: Payment
    client_secret: str  # for Stripe.js to finish a payment that requires action


def payment_start(
    *,
    workspace_id: uuid.UUID,
    email: str,
    amount_micro_usd: int,
    payment_method_id: str,
    save_card: bool,
    created_by: AbstractBaseUser | None = None,
) -> PaymentStarted:
    """Charge the card the browser set up. The payment comes back succeeded (and credited),
    requires_action (the browser completes 3-D Secure with the client secret, then `payment_refresh`), or
    PaymentDeclined."""
    customer = stripe_customer_for(workspace_id=workspace_id, email=email)
    try:
        intent = stripe_api.payment_intent_confirm_new(
            amount_cents=amount_micro_usd // MICRO_PER_CENT,
            customer_id=customer.customer_id,
            payment_method_id=payment_method_id,
            metadata={"workspace_id": str(workspace_id), "kind": PaymentKind.PURCHASE},
            idempotency_key=f"purchase-{uuid.uuid4().hex}",
        )
    except stripe.CardError as exc:
        raise PaymentDeclined(exc.user_message or "Your card was declined.") from exc
    payment = payment_sync(intent, created_by=created_by)
    if save_card:
        card_save(customer=customer, payment_method_id=payment_method_id, brand=payment.card_brand,
                  last4=payment.card_last4)  # fmt: skip
    return PaymentStarted(payment=payment, client_secret=str(intent.get("client_secret") or ""))


def card_save(*, customer: StripeCustomer, payment_method_id: str, brand: str, last4: str) -> None:
    StripeCustomer.objects.filter(pk=customer.pk).update(
        payment_method_id=payment_method_id, card_brand=brand, card_last4=last4
    )


def payment_refresh(*, workspace_id: uuid.UUID, payment_intent_id: str) -> Payment:
    """The browser is back (after 3-D Secure): how the payment stands at Stripe, credited if it succeeded."""
    if not Payment.objects.filter(workspace_id=workspace_id, payment_intent_id=payment_intent_id).exists():
        raise PaymentNotFound(payment_intent_id)
    return payment_sync(stripe_api.payment_intent_retrieve(payment_intent_id))


def payment_sync(intent: Json, *, created_by: AbstractBaseUser | None = None) -> Payment:
    """The Payment of a PaymentIntent as Stripe reports it; credits the workspace, once, when it succeeded."""
    metadata = intent.get("metadata") or {}
    status = _STATUSES.get(str(intent.get("status")), PaymentStatus.PENDING)
    brand, last4 = _card_of(intent)
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, dict) else {"id": charge or ""}
    with transaction.atomic():
        payment, _ = Payment.objects.select_for_update().get_or_create(
            payment_intent_id=intent["id"],
            defaults={
                "workspace_id": metadata["workspace_id"],
                "kind": metadata.get("kind") or PaymentKind.PURCHASE,
                "amount_micro_usd": int(intent["amount"]) * MICRO_PER_CENT,
                "created_by_id": created_by.pk if created_by is not None else None,
            },
        )
        if payment.status != PaymentStatus.SUCCEEDED:  # a late report never undoes a success
            payment.status = status
        payment.card_brand, payment.card_last4 = brand or payment.card_brand, last4 or payment.card_last4
        payment.charge_id = str(charge.get("id") or payment.charge_id)
        payment.receipt_url = str(charge.get("receipt_url") or payment.receipt_url)
        error = intent.get("last_payment_error") or {}
        payment.failure_message = (
            str(error.get("message") or "")[:300] if status == PaymentStatus.FAILED else ""
        )
        if payment.status == PaymentStatus.SUCCEEDED and payment.succeeded_at is None:
            payment.succeeded_at = timezone.now()
            credits_purchase(payment=payment)
        payment.save()
    return payment


def credits_purchase(*, payment: Payment) -> LedgerEntry:
    """The purchase entry of a succeeded payment; a replay returns the entry already posted."""
    label = "Auto top-up" if payment.kind == PaymentKind.AUTO_TOP_UP else "Card payment"
    card = f" ({payment.card_brand} •••• {payment.card_last4})" if payment.card_last4 else ""
    return ledger_post(
        workspace_id=payment.workspace_id,
        kind=EntryKind.PURCHASE,
        amount_micro_usd=payment.amount_micro_usd,
        reason=f"{label}{card}",
        reference=payment.payment_intent_id,
        metadata={"payment_intent": payment.payment_intent_id},
    )


# --- Refunds -------------------------------------------------------------------------------------
def payment_refund(
    *, payment: Payment, amount_micro_usd: int, by: AbstractBaseUser | None = None
) -> LedgerEntry:
    """Refund (part of) a payment through Stripe, and post the refund entry at once (the webhook that
    follows finds it posted). Never more than what is left to refund."""
    left = payment.amount_micro_usd - payment.refunded_micro_usd
    if payment.status != PaymentStatus.SUCCEEDED or not 0 < amount_micro_usd <= left:
        raise InvalidAmount(f"amount: a succeeded payment's refund, at most {left} micro-USD")
    refund = stripe_api.refund_create(
        payment_intent_id=payment.payment_intent_id,
        amount_cents=amount_micro_usd // MICRO_PER_CENT,
        idempotency_key=f"refund-{payment.payment_intent_id}-{payment.refunded_micro_usd}-{amount_micro_usd}",
    )
    return refund_apply(payment=payment, refund=refund, by=by)


def refund_apply(*, payment: Payment, refund: Json, by: AbstractBaseUser | None = None) -> LedgerEntry:
    """The refund entry of one Stripe refund (once by its id). The balance may go negative: new requests
    are then refused, and nothing in flight is lost (its hold stands until it settles)."""
    with transaction.atomic():
        entry = ledger_post(
            workspace_id=payment.workspace_id,
            kind=EntryKind.REFUND,
            amount_micro_usd=-int(refund["amount"]) * MICRO_PER_CENT,
            reason=f"Refund of {payment.payment_intent_id}",
            reference=str(refund["id"]),
            created_by=by,
            metadata={"payment_intent": payment.payment_intent_id},
        )
        refunded = -sum(
            e.amount_micro_usd
            for e in LedgerEntry.objects.filter(
                kind=EntryKind.REFUND, metadata__payment_intent=payment.payment_intent_id
            )
        )
        Payment.objects.filter(pk=payment.pk).update(refunded_micro_usd=refunded)
    return entry


# --- Webhooks -------------------------------------------------------------------------------------
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


def payments_of(*, workspace_id: uuid.UUID) -> list[Payment]:
    return list(Payment.objects.filter(workspace_id=workspace_id).order_by("-created_at"))

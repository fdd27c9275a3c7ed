"""Money in: credits bought by card with Stripe (design §4, invariant 5) — a purchase on the Add credits page
and the off-session auto top-up, each a PaymentIntent that `payment_sync` credits once.

A purchase is a `purchase` ledger entry whose reference is the PaymentIntent's id, and a refund a `refund`
entry whose reference is the Stripe refund's id: the ledger's unique (kind, reference) makes every replay a
no-op, so the browser's return, the webhook and a retry may all report the same payment and it is credited
once, in whatever order they come. Refunds are in billing/refunds.py; webhook events, stored once by their id
and applied by a Celery task, in billing/stripe_events.py.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_api
from billing.errors import InvalidAmount, PaymentDeclined, PaymentNotFound
from billing.models import (
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentKind,
    PaymentStatus,
    StripeCustomer,
)
from billing.money import MICRO_PER_USD
from billing.selectors import account_for
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


def payments_of(*, workspace_id: uuid.UUID) -> list[Payment]:
    return list(Payment.objects.filter(workspace_id=workspace_id).order_by("-created_at"))


# --- Auto top-up -----------------------------------------------------------------------------------
class TopUp(StrEnum):
    CHARGED = "charged"
    NOT_NEEDED = "not_needed"  # off, no saved card, or the balance is above the threshold
    IN_FLIGHT = "in_flight"  # one is on its way already
    DECLINED = "declined"  # the card was refused: auto top-up is now off


IN_FLIGHT_SECONDS = 600  # an auto top-up still pending after this is no longer waited for


def auto_top_up_configure(
    *, workspace_id: uuid.UUID, enabled: bool, threshold_micro_usd: int, amount_micro_usd: int
) -> StripeCustomer:
    """Turn auto top-up on or off. On needs a saved card, an amount a card may buy at once, and a threshold
    that is not negative."""
    customer = StripeCustomer.objects.filter(workspace_id=workspace_id).first()
    if enabled and (customer is None or not customer.payment_method_id):
        raise InvalidAmount("payment_method: save a card first (pay once with “Save this card”)")
    if threshold_micro_usd < 0:
        raise InvalidAmount("threshold: cannot be below $0")
    low, high = settings.CREDITS_MIN_USD * MICRO_PER_USD, settings.CREDITS_MAX_USD * MICRO_PER_USD
    if enabled and not low <= amount_micro_usd <= high:
        raise InvalidAmount(f"amount: between ${settings.CREDITS_MIN_USD} and ${settings.CREDITS_MAX_USD:,}")
    if customer is None:
        raise InvalidAmount("payment_method: save a card first (pay once with “Save this card”)")
    StripeCustomer.objects.filter(pk=customer.pk).update(
        auto_top_up=enabled,
        auto_top_up_threshold_micro_usd=threshold_micro_usd,
        auto_top_up_amount_micro_usd=amount_micro_usd,
    )
    customer.refresh_from_db()
    return customer


def auto_top_up_workspaces(*, workspace_ids: set[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these workspaces have auto top-up on (one query: the meters ask after each batch)."""
    return list(
        StripeCustomer.objects.filter(workspace_id__in=workspace_ids, auto_top_up=True).values_list(
            "workspace_id", flat=True
        )
    )


def auto_top_up_run(*, workspace_id: uuid.UUID) -> TopUp:
    """One off-session charge of the saved card when the available balance is below the threshold. The
    customer row stays locked through the charge, so concurrent runs queue behind it and find the balance
    restored: at most one top-up in flight per workspace, whatever triggered it."""
    with transaction.atomic():
        customer = StripeCustomer.objects.select_for_update().filter(workspace_id=workspace_id).first()
        if customer is None or not customer.auto_top_up or not customer.payment_method_id:
            return TopUp.NOT_NEEDED
        if (
            account_for(workspace_id=workspace_id).available_micro_usd
            >= customer.auto_top_up_threshold_micro_usd
        ):
            return TopUp.NOT_NEEDED
        in_flight = Payment.objects.filter(
            workspace_id=workspace_id,
            kind=PaymentKind.AUTO_TOP_UP,
            status__in=(PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION),
            created_at__gte=timezone.now() - timedelta(seconds=IN_FLIGHT_SECONDS),
        ).exists()
        if in_flight:
            return TopUp.IN_FLIGHT
        done = Payment.objects.filter(workspace_id=workspace_id, kind=PaymentKind.AUTO_TOP_UP).count()
        try:
            intent = stripe_api.payment_intent_confirm_new(
                amount_cents=customer.auto_top_up_amount_micro_usd // MICRO_PER_CENT,
                customer_id=customer.customer_id,
                payment_method_id=customer.payment_method_id,
                metadata={"workspace_id": str(workspace_id), "kind": PaymentKind.AUTO_TOP_UP},
                idempotency_key=f"auto-top-up-{workspace_id}-{done}",  # a retry of this run reuses it
                off_session=True,
            )
        except stripe.CardError as exc:
            logger.warning("auto top-up of %s declined: %s", workspace_id, exc.user_message)
            StripeCustomer.objects.filter(pk=customer.pk).update(auto_top_up=False)
            return TopUp.DECLINED
        payment = payment_sync(intent)
        if payment.status == PaymentStatus.SUCCEEDED:
            return TopUp.CHARGED
        # Off-session, nobody can answer the bank (3-D Secure) or fix the card: stop until the owner does.
        StripeCustomer.objects.filter(pk=customer.pk).update(auto_top_up=False)
        message = "The bank asked to confirm the payment; pay once on the Add credits page."
        Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.FAILED, failure_message=message)
        return TopUp.DECLINED


def low_balance_crossed(*, workspace_id: uuid.UUID) -> bool:
    """True once each time the available balance falls below the workspace's threshold (the caller then
    tells the owners); rising above it again re-arms the alert."""
    with transaction.atomic():
        customer = StripeCustomer.objects.select_for_update().filter(workspace_id=workspace_id).first()
        if customer is None:
            return False
        below = (
            account_for(workspace_id=workspace_id).available_micro_usd
            < customer.auto_top_up_threshold_micro_usd
        )
        if below and customer.low_balance_notified_at is None:
            StripeCustomer.objects.filter(pk=customer.pk).update(low_balance_notified_at=timezone.now())
            return True
        if not below and customer.low_balance_notified_at is not None:
            StripeCustomer.objects.filter(pk=customer.pk).update(low_balance_notified_at=None)
        return False

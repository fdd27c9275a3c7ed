"""Refunds of card payments: an operator's refund through Stripe (Django admin), and the `refund` ledger
entry of each Stripe refund, whoever started it (design §4, invariant 5).

Separate from billing/payments.py because money goes the other way: a refund is posted once by the Stripe
refund's id, whether the admin action or the `charge.refunded` webhook (billing/stripe_events.py) reports it
first, and it may take the balance below zero.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from billing import stripe_api
from billing.errors import InvalidAmount
from billing.models import EntryKind, LedgerEntry, Payment, PaymentStatus
from billing.payments import MICRO_PER_CENT, Json
from billing.services import ledger_post


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

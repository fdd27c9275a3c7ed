"""Every call to Stripe, in one place (the official `stripe` library).

`STRIPE_API_BASE` points it at localstripe (the stateful double `make run` and the tests start) or, empty, at
Stripe itself. Each function returns Stripe's object as a plain dict, so nothing else handles the library's
types; failures are `stripe.StripeError` (a declined card: `stripe.CardError`, with a message for people).
"""

from functools import cache
from typing import Any

import stripe
from django.conf import settings

Json = dict[str, Any]


@cache
def _client() -> stripe.StripeClient:
    bases = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY or "sk_test_localstripe",
        base_addresses=bases,  # type: ignore[arg-type]
        max_network_retries=2,  # Stripe's retries reuse the idempotency key
    )


def customer_create(*, email: str, workspace_id: str) -> Json:
    params = {"email": email, "metadata": {"workspace_id": workspace_id}}
    return _client().v1.customers.create(params=params).to_dict()  # type: ignore[arg-type]


def setup_intent_create(*, customer_id: str) -> Json:
    """A SetupIntent the browser confirms with the card (Stripe.js), so the card can also pay later."""
    params = {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]}
    return _client().v1.setup_intents.create(params=params).to_dict()  # type: ignore[arg-type]


def payment_method_retrieve(payment_method_id: str) -> Json:
    return _client().v1.payment_methods.retrieve(payment_method_id).to_dict()


def payment_method_detach(payment_method_id: str) -> None:
    _client().v1.payment_methods.detach(payment_method_id)


def payment_intent_confirm_new(
    *,
    amount_cents: int,
    customer_id: str,
    payment_method_id: str,
    metadata: dict[str, str],
    idempotency_key: str,
    off_session: bool = False,
) -> Json:
    """Create and confirm a PaymentIntent in USD. Its status says what comes next: succeeded,
    requires_action (3-D Secure, in the browser), or a CardError is raised when the card is declined."""
    params: Json = {
        "amount": amount_cents,
        "currency": "usd",
        "customer": customer_id,
        "payment_method": payment_method_id,
        "confirm": True,
        "metadata": metadata,
        "expand": ["latest_charge"],
    }
    if off_session:
        params["off_session"] = True
    options = {"idempotency_key": idempotency_key}
    return _client().v1.payment_intents.create(params=params, options=options).to_dict()  # type: ignore[arg-type]


def payment_intent_retrieve(payment_intent_id: str) -> Json:
    params = {"expand": ["latest_charge"]}
    return _client().v1.payment_intents.retrieve(payment_intent_id, params=params).to_dict()  # type: ignore[arg-type]


def refund_create(*, payment_intent_id: str, amount_cents: int, idempotency_key: str) -> Json:
    params = {"payment_intent": payment_intent_id, "amount": amount_cents}
    options = {"idempotency_key": idempotency_key}
    return _client().v1.refunds.create(params=params, options=options).to_dict()  # type: ignore[arg-type]


def webhook_event(payload: bytes, signature: str) -> Json:
    """The verified event of a webhook delivery; `stripe.SignatureVerificationError` (or ValueError for a
    body that is not an event) when it is not Stripe's."""
    event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    return event.to_dict()

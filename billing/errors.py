"""Billing refusals. Each carries its code from the gateway's error taxonomy (spec ErrorCode)."""


class BillingError(Exception):
    code = "internal_error"


class InsufficientCredits(BillingError):
    code = "insufficient_credits"


class KeyLimitExceeded(BillingError):
    code = "key_limit_exceeded"


class ReservationNotFound(BillingError):
    code = "internal_error"


class InvalidAmount(BillingError):
    """An amount the ledger refuses: not a USD amount, finer than a micro-dollar, zero, or of the wrong
    sign for its entry kind. Not a ValueError: callers catch it by name (forms never see one, because
    their DecimalFields already limit amounts to 6 decimals)."""

    code = "invalid_request"


class ReasonRequired(BillingError):
    """An operator's adjustment without a reason: the ledger explains every change."""

    code = "invalid_request"


class PaymentDeclined(BillingError):
    """The card was declined (or its 3-D Secure failed); the message is the card issuer's, for people."""

    code = "payment_declined"


class PaymentNotFound(BillingError):
    code = "not_found"


class WebhookRejected(BillingError):
    """A webhook delivery that is not Stripe's: a bad signature, or not an event at all."""

    code = "invalid_request"

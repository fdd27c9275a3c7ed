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

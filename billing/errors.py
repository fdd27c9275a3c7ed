"""Billing refusals. Each carries its code from the gateway's error taxonomy (spec ErrorCode)."""


class BillingError(Exception):
    code = "internal_error"


class InsufficientCredits(BillingError):
    code = "insufficient_credits"


class KeyLimitExceeded(BillingError):
    code = "key_limit_exceeded"


class ReservationNotFound(BillingError):
    code = "internal_error"

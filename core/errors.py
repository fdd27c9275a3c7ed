"""The stable error taxonomy (spec `ErrorCode`): 16 codes, one HTTP status each, identical across formats."""

from enum import StrEnum


class ErrorCode(StrEnum):
    PROVIDER_AUTH = "provider_auth"
    PROVIDER_RATE_LIMIT = "provider_rate_limit"
    PROVIDER_OVERLOADED = "provider_overloaded"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTER = "content_filter"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    KEY_LIMIT_EXCEEDED = "key_limit_exceeded"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    INVALID_API_KEY = "invalid_api_key"
    WORKSPACE_LOCKED = "workspace_locked"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INTERNAL_ERROR = "internal_error"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.PROVIDER_AUTH: 502,
    ErrorCode.PROVIDER_RATE_LIMIT: 429,
    ErrorCode.PROVIDER_OVERLOADED: 529,
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: 400,
    ErrorCode.CONTENT_FILTER: 400,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.PROVIDER_UNAVAILABLE: 502,
    ErrorCode.INSUFFICIENT_CREDITS: 402,
    ErrorCode.KEY_LIMIT_EXCEEDED: 402,
    ErrorCode.MODEL_NOT_ALLOWED: 403,
    ErrorCode.INVALID_API_KEY: 401,
    ErrorCode.WORKSPACE_LOCKED: 403,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INTERNAL_ERROR: 500,
}


class ApiError(Exception):
    """A request refused with a taxonomy code; `param` names the offending field when there is one.

    The HTTP status is the code's, unless given: an unknown resource is `invalid_request` with 404 (the
    taxonomy has no not-found code), an unserved method the same with 405.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        param: str | None = None,
        *,
        status: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.status = status or HTTP_STATUS[code]
        self.headers = headers  # sent with the error (a 429's Retry-After and X-RateLimit-*)

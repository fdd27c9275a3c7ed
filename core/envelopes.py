"""Each format family's error envelope, with the taxonomy `code`: one table of error `type`s, one function
per family. OpenAI's serves chat completions, responses and the management and catalog APIs; Anthropic's
serves messages."""

from typing import Any, NamedTuple

from core.encoding import compact_json
from core.errors import ErrorCode
from core.ids import new_request_id


class ErrorTypes(NamedTuple):
    openai: str
    anthropic: str


# The `type` each family's SDK knows for a taxonomy code (the `code` itself is the same everywhere).
ERROR_TYPES: dict[ErrorCode, ErrorTypes] = {
    ErrorCode.PROVIDER_AUTH: ErrorTypes("api_error", "api_error"),
    ErrorCode.PROVIDER_RATE_LIMIT: ErrorTypes("rate_limit_error", "rate_limit_error"),
    ErrorCode.PROVIDER_OVERLOADED: ErrorTypes("api_error", "overloaded_error"),
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: ErrorTypes("invalid_request_error", "invalid_request_error"),
    ErrorCode.CONTENT_FILTER: ErrorTypes("invalid_request_error", "invalid_request_error"),
    ErrorCode.PROVIDER_TIMEOUT: ErrorTypes("api_error", "timeout_error"),
    ErrorCode.PROVIDER_UNAVAILABLE: ErrorTypes("api_error", "api_error"),
    ErrorCode.INSUFFICIENT_CREDITS: ErrorTypes("insufficient_quota", "billing_error"),
    ErrorCode.KEY_LIMIT_EXCEEDED: ErrorTypes("insufficient_quota", "billing_error"),
    ErrorCode.MODEL_NOT_ALLOWED: ErrorTypes("permission_error", "permission_error"),
    ErrorCode.INVALID_API_KEY: ErrorTypes("authentication_error", "authentication_error"),
    ErrorCode.WORKSPACE_LOCKED: ErrorTypes("permission_error", "permission_error"),
    ErrorCode.RATE_LIMIT_EXCEEDED: ErrorTypes("rate_limit_error", "rate_limit_error"),
    ErrorCode.INVALID_REQUEST: ErrorTypes("invalid_request_error", "invalid_request_error"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorTypes("invalid_request_error", "request_too_large"),
    ErrorCode.INTERNAL_ERROR: ErrorTypes("api_error", "api_error"),
}


def openai_error_body(
    code: ErrorCode, message: str, request_id: str, param: str | None = None
) -> dict[str, Any]:
    """The spec's `OpenAIError`."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES[code].openai,
            "code": code.value,
            "param": param,
            "request_id": request_id,
        }
    }


def anthropic_error_body(
    code: ErrorCode, message: str, request_id: str, param: str | None = None
) -> dict[str, Any]:
    """The spec's `AnthropicError`; the field a validation error names is in `message` (no `param` there)."""
    error = {"type": ERROR_TYPES[code].anthropic, "code": code.value, "message": message}
    return {"type": "error", "error": error, "request_id": request_id}


def refused_before_routing(code: ErrorCode, message: str) -> tuple[str, bytes]:
    """A new request id, and the OpenAI envelope's JSON for a request refused before its path chose a format
    (the server protocol's head limit, the body limit in front of Django)."""
    request_id = new_request_id()
    return request_id, compact_json(openai_error_body(code, message, request_id))

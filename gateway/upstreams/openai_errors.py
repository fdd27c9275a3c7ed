"""How OpenAI-style servers fail, on the taxonomy: the status first (base.error_for_status), refined by
the structured `error.code` / `error.type` they send, their words only as a last resort (architecture §3).
"""

import json
from typing import Any

from core.errors import ErrorCode
from gateway.upstreams.base import UpstreamError, error_for_status

Json = dict[str, Any]

# Structured `error.code` / `error.type` values of OpenAI-style servers (OpenAI, Cerebras, Fireworks, vLLM,
# llama.cpp and llama-cpp-python) that say more than the status.
_STRUCTURED_CODES: dict[str, ErrorCode] = {
    "context_length_exceeded": ErrorCode.CONTEXT_LENGTH_EXCEEDED,
    "exceed_context_size_error": ErrorCode.CONTEXT_LENGTH_EXCEEDED,  # llama.cpp
    "content_filter": ErrorCode.CONTENT_FILTER,
    "content_policy_violation": ErrorCode.CONTENT_FILTER,
    "rate_limit_exceeded": ErrorCode.PROVIDER_RATE_LIMIT,
    "rate_limit_error": ErrorCode.PROVIDER_RATE_LIMIT,
    "too_many_requests_error": ErrorCode.PROVIDER_RATE_LIMIT,  # Cerebras
    "queue_exceeded": ErrorCode.PROVIDER_OVERLOADED,  # Cerebras: "high traffic right now"
    "overloaded_error": ErrorCode.PROVIDER_OVERLOADED,
    "authentication_error": ErrorCode.PROVIDER_AUTH,
    "invalid_api_key": ErrorCode.PROVIDER_AUTH,
    "wrong_api_key": ErrorCode.PROVIDER_AUTH,
}
# The last resort, and only within the status class it fits: a 400 that says the prompt is too long (servers
# that send no code), a 5xx that says it is overloaded. Words never turn a refusal into a retried failure.
_CONTEXT_PHRASES = (
    "maximum context length",
    "context length",
    "context_length",
    "context window",
    "context size",
    "prompt is too long",
)


def error_object(body: str | Json) -> Json:
    """The `error` object of an error body (or an in-stream error chunk); {} when there is none."""
    data: Any = body
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return {"message": body}
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return error
    return {"message": str(error)}


def error_words(error: Json) -> str:
    return str(error.get("message") or error.get("detail") or "")


def classify_error(status: int, error: Json) -> ErrorCode:
    """An OpenAI-style failure on the taxonomy: the structured code or type, else the status."""
    for name in ("code", "type"):
        if isinstance(value := error.get(name), str) and value in _STRUCTURED_CODES:
            return _STRUCTURED_CODES[value]
    code = error_for_status(status)
    words = error_words(error).lower()
    if code is ErrorCode.INVALID_REQUEST and any(phrase in words for phrase in _CONTEXT_PHRASES):
        return ErrorCode.CONTEXT_LENGTH_EXCEEDED
    if code is ErrorCode.PROVIDER_UNAVAILABLE and "overloaded" in words:
        return ErrorCode.PROVIDER_OVERLOADED
    return code


def http_failure(slug: str, status: int, body: str, retry_after: str | None = None) -> UpstreamError:
    error = error_object(body)
    return UpstreamError.from_upstream(
        classify_error(status, error),
        error_words(error),
        detail=f"{slug}: HTTP {status}: {body[:2000]}",
        status=status,
        retry_after=retry_after,
    )

"""The one error table and the two envelopes every surface uses (gateway formats, management, catalog)."""

import pytest

from core.envelopes import ERROR_TYPES, anthropic_error_body, openai_error_body
from core.errors import HTTP_STATUS, ApiError, ErrorCode

# What each family's SDK expects for each code: (OpenAI `type`, Anthropic `type`).
EXPECTED_TYPES = {
    ErrorCode.PROVIDER_AUTH: ("api_error", "api_error"),
    ErrorCode.PROVIDER_RATE_LIMIT: ("rate_limit_error", "rate_limit_error"),
    ErrorCode.PROVIDER_OVERLOADED: ("api_error", "overloaded_error"),
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: ("invalid_request_error", "invalid_request_error"),
    ErrorCode.CONTENT_FILTER: ("invalid_request_error", "invalid_request_error"),
    ErrorCode.PROVIDER_TIMEOUT: ("api_error", "timeout_error"),
    ErrorCode.PROVIDER_UNAVAILABLE: ("api_error", "api_error"),
    ErrorCode.INSUFFICIENT_CREDITS: ("insufficient_quota", "billing_error"),
    ErrorCode.KEY_LIMIT_EXCEEDED: ("insufficient_quota", "billing_error"),
    ErrorCode.MODEL_NOT_ALLOWED: ("permission_error", "permission_error"),
    ErrorCode.INVALID_API_KEY: ("authentication_error", "authentication_error"),
    ErrorCode.WORKSPACE_LOCKED: ("permission_error", "permission_error"),
    ErrorCode.RATE_LIMIT_EXCEEDED: ("rate_limit_error", "rate_limit_error"),
    ErrorCode.INVALID_REQUEST: ("invalid_request_error", "invalid_request_error"),
    ErrorCode.PAYLOAD_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorCode.INTERNAL_ERROR: ("api_error", "api_error"),
}


def test_every_taxonomy_code_has_a_status_and_a_type_in_each_family():
    assert set(HTTP_STATUS) == set(ErrorCode) == set(ERROR_TYPES) == set(EXPECTED_TYPES)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_the_openai_envelope_carries_the_code_its_type_and_the_field(code):
    assert openai_error_body(code, "msg", "rid", "messages") == {
        "error": {
            "message": "msg",
            "type": EXPECTED_TYPES[code][0],
            "code": code.value,
            "param": "messages",
            "request_id": "rid",
        }
    }


@pytest.mark.parametrize("code", list(ErrorCode))
def test_the_anthropic_envelope_carries_the_code_and_its_type(code):
    assert anthropic_error_body(code, "msg", "rid", param="x") == {
        "type": "error",
        "error": {"type": EXPECTED_TYPES[code][1], "code": code.value, "message": "msg"},
        "request_id": "rid",
    }


def test_an_api_error_takes_its_codes_status_unless_told_otherwise():
    assert ApiError(ErrorCode.KEY_LIMIT_EXCEEDED, "over").status == 402
    refused = ApiError(ErrorCode.INVALID_REQUEST, "no such model", "slug", status=404)
    assert (refused.status, refused.param, refused.message) == (404, "slug", "no such model")

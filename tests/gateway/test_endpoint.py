"""The shell of the endpoints beyond the ingress formats: a refusal in the endpoint's envelope with its
status and headers, a bug as internal_error with the request id, a client gone answered with nothing."""

import asyncio
import json

from core.envelopes import anthropic_error_body, openai_error_body
from core.errors import ApiError, ErrorCode
from gateway.endpoint import answered
from gateway.http import ClientGone
from gateway.metrics import ERRORS, publish
from gateway.ratelimit import rate_limited


def run(work, error_body=openai_error_body):
    sent: list[dict] = []

    async def send(message):
        sent.append(dict(message))

    async def go():
        return await answered(send, "rid123", error_body, work)

    return asyncio.run(go()), sent


def test_a_result_passes_through_and_nothing_is_sent():
    async def work():
        return 42

    assert run(work) == (42, [])


def test_a_refusal_is_the_endpoints_envelope_with_its_status_and_headers():
    async def work():
        raise rate_limited(3, now=1_800_000_015.5)

    result, sent = run(work, anthropic_error_body)
    headers = dict(sent[0]["headers"])
    body = json.loads(sent[1]["body"])
    assert result is None and sent[0]["status"] == 429
    assert headers[b"request-id"] == headers[b"x-request-id"] == b"rid123"
    assert headers[b"retry-after"] == b"45" and headers[b"x-ratelimit-limit"] == b"3"
    assert body["type"] == "error" and body["error"]["code"] == "rate_limit_exceeded"


def internal_errors() -> float:
    # `work` below is this module's: an endpoint is named by its module's last part (endpoint_refused).
    publish()  # the tally into prometheus_client's values, as a scrape does first
    return ERRORS.labels("test_endpoint", "", "", ErrorCode.INTERNAL_ERROR.value)._value.get()


def test_a_bug_is_internal_error_with_the_request_id_and_is_counted():
    async def work():
        raise RuntimeError("boom")

    before = internal_errors()
    result, sent = run(work)
    assert internal_errors() == before + 1
    body = json.loads(sent[1]["body"])
    assert result is None and sent[0]["status"] == 500
    assert body["error"]["code"] == "internal_error" and body["error"]["request_id"] == "rid123"
    assert "boom" not in sent[1]["body"].decode()


def test_a_client_gone_gets_nothing():
    async def work():
        raise ClientGone

    assert run(work) == (None, [])


def test_an_invalid_request_names_its_field():
    async def work():
        raise ApiError(ErrorCode.INVALID_REQUEST, "input: required", param="input")

    _, sent = run(work)
    assert sent[0]["status"] == 400 and json.loads(sent[1]["body"])["error"]["param"] == "input"

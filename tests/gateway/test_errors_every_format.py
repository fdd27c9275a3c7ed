"""Errors in each format use its own envelope and the taxonomy code, streaming or not.

Every ingress format (chat completions, responses, messages) is driven with its official SDK and, for the
bytes, with httpx, through the whole gateway against real-HTTP fakes. Each error body is validated against
the error schema the spec declares for the format's path (OpenAIError / AnthropicError), its HTTP status
against the taxonomy table, and its request_id against the X-Request-Id header. A failed request is
recorded as failed, with its code, and costs nothing.
"""

import json
from contextlib import ExitStack

import anthropic
import httpx
import openai
import pytest

from billing.models import CreditAccount
from console.services.keys import api_key_create
from core.errors import HTTP_STATUS, ErrorCode
from tests.factories import make_workspace
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

KEY = "test-key"
FORMATS = ["chat", "responses", "messages"]
PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}
FIRST_TEXT, FULL_TEXT = "abcde", "abcdefghij"  # the fakes send "abcde" before they fail mid-stream
# The native error class of each format (OpenAI, Anthropic) for a taxonomy code.
NATIVE_TYPE = {
    "invalid_api_key": ("authentication_error", "authentication_error"),
    "invalid_request": ("invalid_request_error", "invalid_request_error"),
    "insufficient_credits": ("insufficient_quota", "billing_error"),
    "provider_unavailable": ("api_error", "api_error"),
    "provider_rate_limit": ("rate_limit_error", "rate_limit_error"),
    "provider_overloaded": ("api_error", "overloaded_error"),
}


# --- Talking to the gateway in each format ------------------------------------------------------------
def request_body(fmt: str, model: str, stream: bool) -> dict:
    if fmt == "responses":
        return {"model": model, "input": "hi", "stream": stream}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return {**body, "max_tokens": 50} if fmt == "messages" else body


def sdk_create(fmt: str, url: str, key: str, body: dict):
    """The format's official SDK call (max_retries=0: one request, one generation)."""
    if fmt == "messages":
        return anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0).messages.create(**body)
    client = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)
    create = client.responses.create if fmt == "responses" else client.chat.completions.create
    return create(**body)


def sdk_refusal(fmt: str, url: str, key: str, body: dict):
    sdk = anthropic if fmt == "messages" else openai
    with pytest.raises(sdk.APIStatusError) as refused:
        sdk_create(fmt, url, key, body)
    return refused.value


def raw_events(
    fmt: str, url: str, key: str, body: dict
) -> tuple[httpx.Response, list[tuple[str | None, str]]]:
    """The raw SSE stream, as (event name, data) pairs, keep-alive comments left out."""
    headers = {"x-api-key": key} if fmt == "messages" else {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", url + PATHS[fmt], headers=headers, json=body, timeout=20) as response:
        text = response.read().decode()
    events = []
    for frame in text.split("\n\n"):
        lines = [line for line in frame.splitlines() if line and not line.startswith(":")]
        if lines:
            name = next((line[7:] for line in lines if line.startswith("event: ")), None)
            events.append((name, "\n".join(line[6:] for line in lines if line.startswith("data: "))))
    return response, events


@pytest.fixture
def envelope(hyperinfer_spec, spec_validator):
    """check(fmt, body, code, request_id) -> the `error` object, once the body is shown to be the format's
    own envelope: valid against the error schema the spec declares for the format's path, exact keys, the
    taxonomy code, the native error class and the request id."""

    def check(fmt: str, body: dict, code: str, request_id: str) -> dict:
        declared = hyperinfer_spec["paths"][PATHS[fmt]]["post"]["responses"]["default"]
        spec_validator(body, declared["content"]["application/json"]["schema"])
        error = body["error"]
        if fmt == "messages":
            assert set(body) == {"type", "error", "request_id"} and body["request_id"] == request_id
            assert set(error) == {"type", "code", "message"}
        else:
            assert set(body) == {"error"} and error["request_id"] == request_id
            assert set(error) == {"message", "type", "code", "param", "request_id"}
        assert error["code"] == code
        assert error["type"] == NATIVE_TYPE[code][fmt == "messages"]
        return error

    return check


def assert_refused(fmt: str, refusal, code: str, envelope, status: int | None = None) -> dict:
    """A refusal before any streaming: the taxonomy status (or `status`, for a not-found, which the taxonomy
    has no code of its own for), a JSON body in the format's envelope."""
    response = refusal.response
    assert refusal.status_code == response.status_code == (status or HTTP_STATUS[ErrorCode(code)])
    assert response.headers["content-type"].startswith("application/json")
    sdk_code = refusal.body["error"]["code"] if fmt == "messages" else refusal.code
    assert sdk_code == code  # what the SDK itself exposes
    return envelope(fmt, response.json(), code, response.headers["x-request-id"])


def balance(workspace) -> tuple[int, int]:
    account = CreditAccount.objects.get(workspace=workspace)
    return account.balance_micro_usd, account.reserved_micro_usd


def assert_failed_for_free(request_id: str, code: str) -> None:
    generation = settled_generation(request_id)
    assert (generation.status, generation.error_code, generation.cost_micro_usd) == ("failed", code, 0)


def start_upstream(stack: ExitStack, kind: str, failure: str) -> tuple[object, str]:
    """A fake upstream of `kind` that fails with `failure`: (fake, base_url for the catalog)."""
    if kind == "anthropic":
        scenario = AnthropicScenario(text=FULL_TEXT, chunks=2, failure=failure, api_key=KEY)
        fake = stack.enter_context(anthropic_fake(scenario))
        return fake, fake.url + "/v1"
    fake = stack.enter_context(openai_fake(kind, Scenario(text=FULL_TEXT, failure=failure), api_key=KEY))
    return fake, fake.base_url


@pytest.fixture
def broke_key(transactional_db) -> str:
    """A key of a workspace with no credits at all."""
    return api_key_create(workspace=make_workspace(credits_micro_usd=0), name="broke", created_by=None).secret


# --- 1-4: refused at admission ------------------------------------------------------------------------
def breaks_the_schema(fmt: str) -> dict:
    # The anthropic SDK has no `temperature` argument; `max_tokens` must be positive.
    return {"max_tokens": 0} if fmt == "messages" else {"temperature": 7}


ADMISSION_CASES = {
    # case: (which key, the request's overrides in a format, code, whether the error names that field)
    # An unknown model is invalid_request with 404, as OpenAI answers it.
    "bad_api_key": ("wrong", lambda fmt: {}, "invalid_api_key", False),
    "schema_error": ("funded", breaks_the_schema, "invalid_request", True),
    "unknown_model": ("funded", lambda fmt: {"model": "nobody/no-such-model"}, "invalid_request", True),
    "insufficient_credits": (
        "broke",
        lambda fmt: {"model": "hyperinfer/sandbox-pro"},
        "insufficient_credits",
        False,
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(ADMISSION_CASES))
def test_a_refused_request_gets_the_format_envelope_and_the_taxonomy_status(
    gateway_url, funded_key, broke_key, envelope, fmt, stream, case
):
    which_key, overrides_in, code, names_field = ADMISSION_CASES[case]
    key = {"wrong": "hi-not-a-key", "funded": funded_key[1], "broke": broke_key}[which_key]
    overrides = overrides_in(fmt)
    body = {**request_body(fmt, "hyperinfer/sandbox", stream), **overrides}

    status = 404 if case == "unknown_model" else None
    error = assert_refused(fmt, sdk_refusal(fmt, gateway_url, key, body), code, envelope, status)

    if names_field:
        field = next(iter(overrides))
        assert error["message"].startswith(f"{field}: ")
        if fmt != "messages":  # the Anthropic envelope has no `param`: the message names the field
            assert error["param"] == field


# --- 5: every route fails before the first byte -------------------------------------------------------
ALL_ROUTES_DOWN = {
    # case: (each route's (kind, failure), in order; the code of the last failure)
    "5xx_everywhere": ([("cerebras", "server_error"), ("fireworks", "server_error")], "provider_unavailable"),
    "then_rate_limited": ([("cerebras", "server_error"), ("anthropic", "rate_limit")], "provider_rate_limit"),
    "overloaded_everywhere": (
        [("baseten", "overloaded"), ("anthropic", "overloaded")],
        "provider_overloaded",
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(ALL_ROUTES_DOWN))
def test_when_every_route_fails_before_the_first_byte_the_error_is_in_the_format_envelope(
    gateway_url, funded_key, envelope, monkeypatch, fmt, stream, case
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    workspace, key = funded_key
    routes, code = ALL_ROUTES_DOWN[case]
    before = balance(workspace)
    with ExitStack() as stack:
        started = [start_upstream(stack, kind, failure) for kind, failure in routes]
        serve_model_from(
            "test/down", [(kind, url) for (kind, _), (_, url) in zip(routes, started, strict=True)]
        )
        refusal = sdk_refusal(fmt, gateway_url, key, request_body(fmt, "test/down", stream))

    assert [len(fake.requests) for fake, _ in started] == [1, 1]  # every route was tried, once
    assert_refused(fmt, refusal, code, envelope)
    assert_failed_for_free(refusal.response.headers["x-request-id"], code)
    assert balance(workspace) == before == (5_000_000, 0)


# --- 6: the upstream breaks after the first byte (streamed only) --------------------------------------
MID_STREAM = {
    # case: (upstream kind, failure, code)
    "openai_error_chunk": ("cerebras", "stream_error", "provider_rate_limit"),
    "anthropic_error_event": ("anthropic", "error_event", "provider_overloaded"),
    "openai_connection_cut": ("cerebras", "cut", "provider_unavailable"),
    "anthropic_connection_cut": ("anthropic", "cut", "provider_unavailable"),
}


def sdk_sees_the_error(fmt: str, url: str, key: str, body: dict, code: str) -> tuple[str, str]:
    """Stream with the SDK up to the error: (the text streamed before it, the request_id it carries)."""
    stream = sdk_create(fmt, url, key, body)
    if fmt == "responses":  # the openai SDK yields typed events: `error`, then `response.failed`
        *events, error, failed = list(stream)
        assert isinstance(error, openai.types.responses.ResponseErrorEvent) and error.code == code
        assert isinstance(failed, openai.types.responses.ResponseFailedEvent)
        assert failed.response.status == "failed" and failed.response.error.code == code
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        return text, failed.response.id.removeprefix("resp_")
    pieces: list[str] = []
    sdk = anthropic if fmt == "messages" else openai
    with pytest.raises(sdk.APIError) as broke:  # both SDKs raise on the format's error frame
        for item in stream:
            if fmt == "chat" and item.choices:
                pieces.append(item.choices[0].delta.content or "")
            elif fmt == "messages" and item.type == "content_block_delta":
                pieces.append(item.delta.text)
    if fmt == "messages":  # anthropic: an APIStatusError whose body is the whole `error` event
        assert isinstance(broke.value, anthropic.APIStatusError) and broke.value.status_code == 200
        assert broke.value.body["error"]["code"] == code
        return "".join(pieces), broke.value.body["request_id"]
    assert broke.value.code == code  # openai: an APIError whose body is the `error` object
    return "".join(pieces), broke.value.body["request_id"]


def assert_error_ends_the_raw_stream(fmt, response, events, code, envelope) -> str:
    """The format's own in-stream error, last in the stream; returns the text streamed before it."""
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    request_id = response.headers["x-request-id"]
    if fmt == "chat":  # an error chunk, then [DONE]
        *chunks, (_, error_data), (_, done) = events
        assert done == "[DONE]"
        envelope(fmt, json.loads(error_data), code, request_id)
        deltas = [json.loads(data)["choices"] for _, data in chunks]
        return "".join(c[0]["delta"].get("content") or "" for c in deltas if c)
    if fmt == "responses":  # an `error` event, then `response.failed`; no [DONE]
        *rest, (error_name, error_data), (failed_name, failed_data) = events
        assert (error_name, failed_name) == ("error", "response.failed")
        error, failed = json.loads(error_data), json.loads(failed_data)["response"]
        assert (error["type"], error["code"]) == ("error", code) and error["message"]
        assert (failed["id"], failed["status"], failed["error"]["code"]) == (
            f"resp_{request_id}",
            "failed",
            code,
        )
        assert "[DONE]" not in [data for _, data in events]
        return "".join(json.loads(d)["delta"] for name, d in rest if name == "response.output_text.delta")
    *rest, (error_name, error_data) = events  # messages: an Anthropic `event: error`, no message_stop
    assert error_name == "error" and "message_stop" not in [name for name, _ in rest]
    envelope(fmt, json.loads(error_data), code, request_id)
    return "".join(json.loads(d)["delta"]["text"] for name, d in rest if name == "content_block_delta")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(MID_STREAM))
def test_an_upstream_error_after_the_first_byte_is_the_format_own_error_event(
    gateway_url, funded_key, envelope, monkeypatch, fmt, case
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    workspace, key = funded_key
    kind, failure, code = MID_STREAM[case]
    before = balance(workspace)
    body = request_body(fmt, "test/breaks", True)
    with ExitStack() as stack:
        _, url = start_upstream(stack, kind, failure)
        serve_model_from("test/breaks", [(kind, url)])
        sdk_text, sdk_request_id = sdk_sees_the_error(fmt, gateway_url, key, body, code)
        response, events = raw_events(fmt, gateway_url, key, body)

    raw_text = assert_error_ends_the_raw_stream(fmt, response, events, code, envelope)
    assert sdk_text == raw_text == FIRST_TEXT  # the error came after the first bytes of the answer
    for request_id in (sdk_request_id, response.headers["x-request-id"]):
        assert_failed_for_free(request_id, code)
    assert balance(workspace) == before == (5_000_000, 0)

"""An upstream's failure on the taxonomy by its status and its dialect's structured error fields, words only
as a last, dialect-specific resort; the client reads a clean message, operators the whole detail.

Each case is a real HTTP fake answering in its dialect's envelope; the end-to-end cases go through the
whole gateway and read the generation record.
"""

import httpx
import pytest

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest, Message, TextBlock
from gateway.upstreams.anthropic import AnthropicAdapter
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.baseten import BasetenAdapter
from gateway.upstreams.cerebras import CerebrasAdapter
from gateway.upstreams.fireworks import FireworksAdapter
from gateway.upstreams.llamacpp import LlamaCppAdapter
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake, anthropic_route
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.server import collect_events
from tests.gateway.conftest import serve_model_from, settled_generation

KEY = "test-key"
ADAPTERS = {
    "cerebras": CerebrasAdapter(),
    "fireworks": FireworksAdapter(),
    "baseten": BasetenAdapter(),
    "llamacpp": LlamaCppAdapter(),
}


def ask() -> CanonicalRequest:
    return CanonicalRequest(model="test/model", messages=[Message("user", [TextBlock("hi")])])


def openai_failure(dialect: str, status: int, message: str, code: str | None = None) -> UpstreamError:
    scenario = Scenario(failure="http_error", error_status=status, error_message=message, error_code=code)
    with openai_fake(dialect, scenario) as fake, pytest.raises(UpstreamError) as caught:
        collect_events(ADAPTERS[dialect], ask(), fake.route())
    return caught.value


def anthropic_failure(status: int, kind: str, message: str) -> UpstreamError:
    scenario = AnthropicScenario(
        failure="http_error", error_status=status, error_type=kind, error_message=message
    )
    with anthropic_fake(scenario) as fake, pytest.raises(UpstreamError) as caught:
        collect_events(AnthropicAdapter(), ask(), anthropic_route(fake.url))
    return caught.value


# (status, the upstream's words, its structured code) → the taxonomy code
OPENAI_CASES = {
    "plain_400_that_mentions_overload": (400, "the word overloaded is not a status", None, "invalid_request"),
    "plain_400_that_mentions_safety": (400, "safety_settings: unknown field", None, "invalid_request"),
    "plain_400": (400, "temperature: must be at most 1", None, "invalid_request"),
    "payment_required": (402, "Your account is out of credits", None, "invalid_request"),
    "not_found": (404, "model fake-model does not exist", None, "provider_unavailable"),
    "too_large": (413, "request entity too large", None, "payload_too_large"),
    "unprocessable": (422, "messages.0.content: field required", None, "invalid_request"),
    "structured_context_code": (400, "too many", "context_length_exceeded", "context_length_exceeded"),
    "context_words_in_a_400": (
        400,
        "This model's maximum context length is 8192 tokens",
        None,
        "context_length_exceeded",
    ),
    "context_words_in_a_500": (500, "context length bookkeeping crashed", None, "provider_unavailable"),
    "overloaded_words_in_a_503": (503, "The model is overloaded", None, "provider_overloaded"),
    "structured_content_filter": (400, "refused", "content_filter", "content_filter"),
    "unauthorized": (401, "Invalid API key", None, "provider_auth"),
    "overloaded_status": (529, "busy", None, "provider_overloaded"),
}


# Baseten's servers (vLLM) put the status in `code`: they have no structured code to test.
OPENAI_PAIRS = [
    (dialect, case)
    for dialect in ADAPTERS
    for case in OPENAI_CASES
    if not (dialect == "baseten" and case.startswith("structured_"))
]


@pytest.mark.parametrize(("dialect", "case"), OPENAI_PAIRS)
def test_openai_style_failures_map_by_status_and_structured_fields(dialect, case):
    status, words, code, expected = OPENAI_CASES[case]
    error = openai_failure(dialect, status, words, code)
    assert (error.code.value, error.status) == (expected, status)
    assert error.retryable == (expected in {"provider_unavailable", "provider_auth", "provider_overloaded"})
    # The detail keeps the provider, the status and the body for operators.
    assert dialect in error.detail and f"HTTP {status}" in error.detail and words in error.detail


ANTHROPIC_CASES = {
    "plain_400_that_mentions_overload": (400, "invalid_request_error", "overloaded? no", "invalid_request"),
    "prompt_too_long": (
        400,
        "invalid_request_error",
        "prompt is too long: 210000 tokens > 200000",
        "context_length_exceeded",
    ),
    "billing": (400, "billing_error", "Your credit balance is too low", "invalid_request"),
    "payment_required_untyped": (402, "", "payment required", "invalid_request"),
    "not_found": (404, "not_found_error", "model: claude-gone", "provider_unavailable"),
    "too_large": (413, "request_too_large", "Request exceeds the maximum size", "payload_too_large"),
    "overloaded": (529, "overloaded_error", "Overloaded", "provider_overloaded"),
    "api_error_that_mentions_context": (
        500,
        "api_error",
        "context window service down",
        "provider_unavailable",
    ),
}


@pytest.mark.parametrize("case", list(ANTHROPIC_CASES))
def test_anthropic_failures_map_by_error_type_then_status(case):
    status, kind, words, expected = ANTHROPIC_CASES[case]
    error = anthropic_failure(status, kind, words)
    assert (error.code.value, error.status) == (expected, status)
    assert f"HTTP {status}" in error.detail and words in error.detail


@pytest.mark.parametrize("status", [401, 429, 500, 503, 529])
def test_a_provider_side_failure_reads_as_a_fixed_sentence_without_the_providers_words(status):
    error = openai_failure("cerebras", status, "internal: shard 7 of fleet eu-west rejected key sk-xyz")
    assert "shard" not in error.message and "sk-xyz" not in error.message and "HTTP" not in error.message
    assert error.message.startswith("The model's provider")
    assert "sk-xyz" in error.detail


def test_a_refused_request_keeps_the_providers_words_so_the_client_can_fix_it():
    error = openai_failure("fireworks", 400, "temperature: must be at most 1")
    assert error.code is ErrorCode.INVALID_REQUEST
    assert error.message == "The model's provider refused the request: temperature: must be at most 1"


# --- Through the gateway -------------------------------------------------------------------------------
def chat(gateway_url: str, key: str, model: str, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{gateway_url}/api/v1/chat/completions", json=body, headers=headers, timeout=20)


def test_a_plain_400_that_mentions_overload_is_not_retried_on_the_next_route(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    refusing = Scenario(failure="http_error", error_status=400, error_message="model overloaded with args")
    with (
        openai_fake("cerebras", refusing, api_key=KEY) as first,
        openai_fake("fireworks", Scenario(text="second"), api_key=KEY) as second,
    ):
        serve_model_from("test/plain400", [("cerebras", first.base_url), ("fireworks", second.base_url)])
        response = chat(gateway_url, funded_key[1], "test/plain400")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert (len(first.chat_requests), len(second.chat_requests)) == (1, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_client_reads_no_provider_slug_status_or_library_error_and_the_record_keeps_them(
    gateway_url, funded_key, monkeypatch, stream
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "wrong-key")  # the provider refuses the gateway's key
    with openai_fake("cerebras", Scenario(), api_key=KEY) as fake:
        serve_model_from("test/badauth", [("cerebras", fake.base_url)])
        response = chat(gateway_url, funded_key[1], "test/badauth", stream=stream)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_auth"
    assert error["message"] == "The model's provider refused this gateway's credentials."
    generation = settled_generation(response.headers["x-request-id"])
    assert (generation.status, generation.error_code) == ("failed", "provider_auth")
    assert "HTTP 401" in generation.error_detail and "Invalid API key" in generation.error_detail


def test_a_connection_cut_mid_stream_reads_cleanly_and_the_record_names_the_library_error(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    with openai_fake("cerebras", Scenario(text="abcdefghij", failure="cut"), api_key=KEY) as fake:
        serve_model_from("test/cut", [("cerebras", fake.base_url)])
        response = chat(gateway_url, funded_key[1], "test/cut", stream=True)
    frames = [line for line in response.text.splitlines() if line.startswith("data: {")]
    error = httpx.Response(200, content=frames[-1].removeprefix("data: ")).json()["error"]
    assert (error["code"], error["message"]) == (
        "provider_unavailable",
        "The model's provider failed to answer.",
    )
    assert "ClientPayloadError" not in response.text and "cerebras" not in response.text
    generation = settled_generation(response.headers["x-request-id"])
    assert "the connection closed before the answer ended" in generation.error_detail

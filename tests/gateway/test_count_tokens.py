"""POST /api/v1/messages/count_tokens, what the Anthropic SDK's `messages.count_tokens()` calls: exact from an
Anthropic upstream's count endpoint or the real llama.cpp server, the gateway's estimate otherwise, said in
`x-hyperinfer-token-count`; free (no reservation, no ledger entry); errors in Anthropic's envelope."""

import os

import anthropic
import httpx
import pytest

from billing.models import LedgerEntry
from gateway.ingress.anthropic_messages import parse_request
from gateway.tokens import estimate_prompt_tokens
from tests.fakes.anthropic_fake import Scenario, anthropic_fake
from tests.gateway.conftest import serve_model_from

pytestmark = [pytest.mark.django_db(transaction=True)]
KEY = "test-key"
MESSAGES = [{"role": "user", "content": "How many tokens are in this sentence?"}]


def sdk(url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)


def test_an_anthropic_upstream_counts_exactly_and_nothing_is_billed(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    workspace, key = funded_key
    entries = LedgerEntry.objects.filter(workspace=workspace).count()
    with anthropic_fake(Scenario(api_key=KEY)) as fake:
        serve_model_from("test/claude-count", [("anthropic", f"{fake.url}/v1")])
        raw = sdk(gateway_url, key).messages.with_raw_response.count_tokens(
            model="test/claude-count", messages=MESSAGES, system="Be brief."
        )
    counted = raw.parse()
    # The fake's rule: 7 words + 3 for the message, 2 words + 5 for the system prompt.
    assert counted.input_tokens == 7 + 3 + 2 + 5
    assert raw.headers["x-hyperinfer-token-count"] == "exact"
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages/count_tokens" and sent.headers["x-api-key"] == KEY
    assert set(sent.body) == {"model", "messages", "system"} and sent.body["model"] == "fake-model"
    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries  # free


def test_a_model_whose_upstream_cannot_count_gets_the_estimate(gateway_url, funded_key):
    _, key = funded_key
    raw = sdk(gateway_url, key).messages.with_raw_response.count_tokens(
        model="hyperinfer/sandbox", messages=MESSAGES
    )
    expected = estimate_prompt_tokens(
        parse_request({"model": "hyperinfer/sandbox", "max_tokens": 1, "messages": MESSAGES})
    )
    assert raw.parse().input_tokens == expected > 0
    assert raw.headers["x-hyperinfer-token-count"] == "estimate"


def test_a_failing_count_falls_back_to_the_estimate(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with anthropic_fake(Scenario(api_key="another-key")) as fake:
        serve_model_from("test/claude-refuses", [("anthropic", f"{fake.url}/v1")])
        raw = sdk(gateway_url, key).messages.with_raw_response.count_tokens(
            model="test/claude-refuses", messages=MESSAGES
        )
    assert raw.headers["x-hyperinfer-token-count"] == "estimate" and raw.parse().input_tokens > 0


def test_bad_requests_are_refused_in_anthropics_envelope(gateway_url, funded_key):
    _, key = funded_key
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    url = f"{gateway_url}/api/v1/messages/count_tokens"
    missing = httpx.post(url, json={"model": "hyperinfer/sandbox"}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_request"
    assert "messages" in missing.json()["error"]["message"]
    unknown = httpx.post(url, json={"model": "nobody/nothing", "messages": MESSAGES}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["type"] == "error"
    anonymous = httpx.post(url, json={"model": "hyperinfer/sandbox", "messages": MESSAGES})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.skipif(not os.environ.get("LLAMACPP_TEST_URL"), reason="no llama-cpp-python server")
def test_the_real_llamacpp_server_counts_with_its_own_template(gateway_url, funded_key):
    base = os.environ["LLAMACPP_TEST_URL"].rstrip("/")
    _, key = funded_key
    serve_model_from("test/llama-count", [("llamacpp", f"{base}/v1")])
    counted = sdk(gateway_url, key).messages.with_raw_response.count_tokens(
        model="test/llama-count", messages=MESSAGES
    )
    # The same server's prompt usage for a one-token answer to the same conversation.
    answer = httpx.post(
        f"{base}/v1/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 1},
        timeout=120,
    ).json()
    assert counted.headers["x-hyperinfer-token-count"] == "exact"
    assert counted.parse().input_tokens == answer["usage"]["prompt_tokens"]

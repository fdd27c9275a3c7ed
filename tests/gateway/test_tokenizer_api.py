"""The Jan spec's tokenizer endpoints for any catalog model: the real llama.cpp server's own ids, count and
text through the gateway; elsewhere tokenize/detokenize refused naming `model` and the count an estimate."""

import os

import httpx
import pytest

from gateway.tokens import text_tokens
from tests.gateway.conftest import serve_model_from

pytestmark = [pytest.mark.django_db(transaction=True)]
TEXT = "How many tokens in this query?"


def post(url: str, key: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.mark.skipif(not os.environ.get("LLAMACPP_TEST_URL"), reason="no llama-cpp-python server")
def test_the_real_llamacpp_tokenizer_through_the_gateway(gateway_url, funded_key):
    base = os.environ["LLAMACPP_TEST_URL"].rstrip("/")
    _, key = funded_key
    serve_model_from("test/llama-tokens", [("llamacpp", f"{base}/v1")])
    own = httpx.post(f"{base}/extras/tokenize", json={"input": TEXT}, timeout=60).json()["tokens"]
    tokenized = post(gateway_url, key, "/api/v1/tokenize", {"model": "test/llama-tokens", "input": TEXT})
    assert tokenized.json() == {"tokens": own} and tokenized.headers["x-hyperinfer-token-count"] == "exact"
    counted = post(gateway_url, key, "/api/v1/tokenize/count", {"model": "test/llama-tokens", "input": TEXT})
    assert counted.json() == {"count": len(own)}
    text = post(gateway_url, key, "/api/v1/detokenize", {"model": "test/llama-tokens", "tokens": own}).json()
    assert text["text"].strip() == TEXT


def test_a_model_without_a_tokenizer_gets_an_estimate_and_refusals_by_name(gateway_url, funded_key):
    _, key = funded_key
    counted = post(gateway_url, key, "/api/v1/tokenize/count", {"model": "hyperinfer/sandbox", "input": TEXT})
    assert counted.json() == {"count": text_tokens(len(TEXT))}
    assert counted.headers["x-hyperinfer-token-count"] == "estimate"
    for path, body in (("/api/v1/tokenize", {"input": TEXT}), ("/api/v1/detokenize", {"tokens": [1, 2]})):
        refused = post(gateway_url, key, path, {"model": "hyperinfer/sandbox", **body})
        error = refused.json()["error"]
        assert refused.status_code == 400 and error["param"] == "model" and "tokenizer" in error["message"]


def test_bad_input_names_the_field(gateway_url, funded_key):
    _, key = funded_key
    cases = [
        ("/api/v1/tokenize", {"input": TEXT}, "model"),
        ("/api/v1/tokenize", {"model": "hyperinfer/sandbox", "input": 3}, "input"),
        ("/api/v1/detokenize", {"model": "hyperinfer/sandbox", "tokens": [1, -2]}, "tokens"),
        ("/api/v1/detokenize", {"model": "hyperinfer/sandbox", "tokens": [True]}, "tokens"),
    ]
    for path, body, field in cases:
        refused = post(gateway_url, key, path, body)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == field, (path, body)
    anonymous = httpx.post(
        f"{gateway_url}/api/v1/tokenize/count", json={"model": "hyperinfer/sandbox", "input": ""}
    )
    assert anonymous.status_code == 401

"""POST /api/v1/embeddings: the catalog's embedding models through the official SDK — the sandbox's own
vectors, an OpenAI-compatible and a Jan (llama.cpp) upstream as fakes, and the real llama-cpp-python server —
each input one unit vector (per-token answers pooled), the upstream's count billed and recorded, the route's
fallback, refusals by field before anything is held."""

import base64
import math
import os
import struct

import httpx
import openai
import pytest

from billing.models import CreditAccount
from gateway.ingress.registry import recorded_format_names
from gateway.upstreams.openai_embeddings import one_vector
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

pytestmark = [pytest.mark.django_db(transaction=True)]
SANDBOX = "hyperinfer/sandbox-embed"
EMBED_URL = os.environ.get("LLAMACPP_EMBEDDING_URL", "").rstrip("/")


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)


def balance(workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).balance_micro_usd


def held(workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).reserved_micro_usd


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_sandbox_embeds_offline_through_the_sdk(gateway_url, funded_key):
    _, key = funded_key
    texts = ["The cat sat on the mat", "A cat sat on a mat", "Quarterly revenue grew twelve percent"]
    raw = sdk(gateway_url, key).embeddings.with_raw_response.create(model=SANDBOX, input=texts)
    answer = raw.parse()  # the SDK asks for base64 and decodes it
    vectors = [item.embedding for item in answer.data]
    assert [item.index for item in answer.data] == [0, 1, 2] and answer.model == SANDBOX
    assert all(
        len(vector) == 256 and math.isclose(cosine(vector, vector), 1, rel_tol=1e-6) for vector in vectors
    )
    # Texts that share words point the same way; unrelated ones do not.
    assert cosine(vectors[0], vectors[1]) > 0.4 > abs(cosine(vectors[0], vectors[2]))
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 6 + 6 + 5
    generation = settled_generation(raw.headers["x-request-id"])
    assert (generation.ingress_format, generation.status, generation.streamed) == (
        "embeddings",
        "completed",
        False,
    )
    assert generation.ingress_format in recorded_format_names()  # the Activity filter and the docs list it
    assert (generation.tokens_prompt, generation.tokens_completion) == (17, 0)

    floats = httpx.post(
        f"{gateway_url}/api/v1/embeddings",
        json={"model": SANDBOX, "input": texts[0], "encoding_format": "float"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    encoded = httpx.post(
        f"{gateway_url}/api/v1/embeddings",
        json={"model": SANDBOX, "input": texts[0], "encoding_format": "base64", "dimensions": 64},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    assert floats["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)  # deterministic
    packed = base64.b64decode(encoded["data"][0]["embedding"])
    assert len(packed) == 64 * 4 and len(struct.unpack("<64f", packed)) == 64


def test_an_upstream_answer_is_billed_its_count_and_per_token_vectors_are_pooled(
    gateway_url, funded_key, sql_meter
):
    workspace, key = funded_key
    before = balance(workspace)
    with openai_fake("llamacpp", Scenario(embedding_per_token=True), api_key="test-key") as fake:
        serve_model_from("test/jan-embed", [("llamacpp", fake.base_url)], kind="embedding", dimensions=4)
        raw = sdk(gateway_url, key).embeddings.with_raw_response.create(
            model="test/jan-embed",
            input=["one two three", "four"],
            encoding_format="float",
            user="end-user-7",
        )
    answer = raw.parse()
    sent = fake.embedding_requests[-1]
    assert sent.body == {"model": "fake-model", "input": ["one two three", "four"]}
    assert sent.headers["Authorization"] == "Bearer test-key"
    # Input 0 came as 3 token vectors [t + k/10]: their mean [1 + k/10], at unit length; the fake answered
    # the inputs in reverse order, and each keeps its index.
    mean = [1 + k / 10 for k in range(4)]
    norm = math.sqrt(sum(x * x for x in mean))
    assert answer.data[0].embedding == pytest.approx([x / norm for x in mean])
    assert answer.data[1].embedding == pytest.approx(one_vector([[1 + k / 10 for k in range(4)]]))
    assert answer.usage.prompt_tokens == 4  # the upstream's count, not the estimate
    generation = settled_generation(raw.headers["x-request-id"])
    assert (generation.tokens_prompt, generation.cost_micro_usd, generation.end_user) == (4, 4, "end-user-7")
    assert before - balance(workspace) == generation.cost_micro_usd and held(workspace) == 0


def test_an_openai_compatible_upstream_gets_dimensions_and_llamacpp_refuses_them_by_name(
    gateway_url, funded_key, sql_meter
):
    workspace, key = funded_key
    with openai_fake("llamacpp", api_key="test-key") as fake:
        serve_model_from(
            "test/oa-embed", [("openai_compatible", fake.base_url)], kind="embedding", dimensions=8
        )
        serve_model_from("test/jan-embed", [("llamacpp", fake.base_url)], kind="embedding", dimensions=8)
        client = sdk(gateway_url, key)
        shortened = client.embeddings.with_raw_response.create(
            model="test/oa-embed", input="hi", dimensions=3
        )
        settled_generation(shortened.headers["x-request-id"])
        before, calls = balance(workspace), len(fake.requests)
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model="test/jan-embed", input="hello", dimensions=3)
    assert (
        fake.embedding_requests[0].body["dimensions"] == 3 and len(shortened.parse().data[0].embedding) == 3
    )
    assert refused.value.body["param"] == "dimensions" and refused.value.body["code"] == "invalid_request"
    assert len(fake.requests) == calls  # nothing was sent for the refused one
    assert balance(workspace) == before and held(workspace) == 0


def test_a_failing_route_falls_back_and_a_refusal_is_not_billed(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    with (
        openai_fake("llamacpp", Scenario(failure="server_error"), api_key="test-key") as down,
        openai_fake("llamacpp", api_key="test-key") as up,
    ):
        serve_model_from(
            "test/two-routes", [("llamacpp", down.base_url), ("llamacpp", up.base_url)], kind="embedding",
            dimensions=4,
        )  # fmt: skip
        served = sdk(gateway_url, key).embeddings.with_raw_response.create(
            model="test/two-routes", input="a b"
        )
        generation = settled_generation(served.headers["x-request-id"])
        assert generation.provider == "test-two-routes-1" and generation.tokens_prompt == 2
        up.scenario = Scenario(failure="http_error", error_status=400, error_message="input too long")
        down.scenario = Scenario(failure="http_error", error_status=400, error_message="input too long")
        before = balance(workspace)
        refused = httpx.post(
            f"{gateway_url}/api/v1/embeddings",
            json={"model": "test/two-routes", "input": "a b"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert refused.status_code == 400 and "input too long" in refused.json()["error"]["message"]
    failed = settled_generation(refused.headers["x-request-id"])
    assert (failed.status, failed.cost_micro_usd, failed.error_code) == ("failed", 0, "invalid_request")
    assert len(up.embedding_requests) == 1  # a refusal of the request itself is not retried elsewhere
    assert balance(workspace) == before and held(workspace) == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": SANDBOX, "input": ""}, 400, "input"),
        ({"model": SANDBOX, "input": ["ok", ""]}, 400, "input[1]"),
        ({"model": SANDBOX, "input": [[1, 2, 3]]}, 400, "input"),
        ({"model": SANDBOX, "input": ["x"] * 2049}, 400, "input"),
        ({"model": SANDBOX, "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": SANDBOX, "input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"model": SANDBOX, "input": "x", "dimensions": 257}, 400, "dimensions"),
        ({"model": SANDBOX, "input": "x" * 200_000}, 400, "input"),  # over the 8,192-token context
        ({"model": "hyperinfer/sandbox", "input": "x"}, 400, "model"),  # a chat model
        ({"model": "no/such-model", "input": "x"}, 404, "model"),
        ({"input": "x"}, 400, "model"),  # missing: named too
    ],
)
def test_bad_input_names_the_field_and_holds_nothing(gateway_url, funded_key, body, status, field):
    workspace, key = funded_key
    answer = httpx.post(
        f"{gateway_url}/api/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    error = answer.json()["error"]
    assert answer.status_code == status and error["param"] == field, error
    assert held(workspace) == 0


def test_an_embedding_model_is_refused_by_the_chat_formats(gateway_url, funded_key):
    _, key = funded_key
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(gateway_url, key).chat.completions.create(
            model=SANDBOX, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["param"] == "model" and "/api/v1/embeddings" in refused.value.body["message"]


def _embedding_server() -> bool:
    try:
        return bool(EMBED_URL) and httpx.get(f"{EMBED_URL}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(
    not _embedding_server(), reason="no llama-cpp-python embedding server: LLAMACPP_EMBEDDING_URL"
)
def test_the_real_llamacpp_server_embeds_and_is_billed_its_own_count(gateway_url, funded_key):
    workspace, key = funded_key
    serve_model_from("test/llama-embed", [("llamacpp", f"{EMBED_URL}/v1")], kind="embedding", dimensions=576)
    texts = ["Paris is the capital of France", "東京 🍣"]
    before = balance(workspace)
    raw = sdk(gateway_url, key).embeddings.with_raw_response.create(model="test/llama-embed", input=texts)
    answer = raw.parse()
    direct = httpx.post(f"{EMBED_URL}/v1/embeddings", json={"input": texts}, timeout=60).json()
    generation = settled_generation(raw.headers["x-request-id"])
    assert generation.tokens_prompt == direct["usage"]["prompt_tokens"] == answer.usage.prompt_tokens > 0
    for ours, theirs in zip(answer.data, sorted(direct["data"], key=lambda item: item["index"]), strict=True):
        assert len(ours.embedding) == 576 and math.isclose(
            cosine(ours.embedding, ours.embedding), 1, rel_tol=1e-5
        )
        assert ours.embedding == pytest.approx(one_vector(theirs["embedding"]), abs=1e-5)
    assert before - balance(workspace) == generation.cost_micro_usd > 0

"""POST /api/v1/completions, OpenAI's legacy text completions: the prompt as it is to an upstream's
completions endpoint (the sandbox, Cerebras and Jan fakes, the real llama.cpp server), metered and recorded as
`completions`; refused by name for models whose providers have no such endpoint, before anything is held."""

import os

import httpx
import openai
import pytest

from billing.models import CreditAccount
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

pytestmark = [pytest.mark.django_db(transaction=True)]
PROMPT = "The capital of France is"
LLAMA_URL = os.environ.get("LLAMACPP_TEST_URL", "").rstrip("/")


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)


def balance(workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).balance_micro_usd


def test_the_sandbox_answers_the_sdk_whole_and_streamed(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    serve_model_from("test/priced-sandbox", [("mock", "")])  # the shipped sandbox is free
    before = balance(workspace)
    raw = client(gateway_url, key).completions.with_raw_response.create(
        model="test/priced-sandbox", prompt=PROMPT, max_tokens=50
    )
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.id == f"cmpl-{raw.headers['x-request-id']}"
    assert completion.choices[0].text == f"Hello from the HyperInfer sandbox. You said: {PROMPT}"
    assert completion.choices[0].finish_reason == "stop"
    generation = settled_generation(raw.headers["x-request-id"])
    assert generation.ingress_format == "completions" and generation.status == "completed"
    assert completion.usage.completion_tokens == generation.tokens_completion == 12

    chunks = list(
        client(gateway_url, key).completions.create(
            model="test/priced-sandbox", prompt=PROMPT, max_tokens=5, stream=True
        )
    )
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert text == "Hello from the HyperInfer sandbox."
    assert [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    streamed = settled_generation(chunks[0].id.removeprefix("cmpl-"))
    assert streamed.streamed and streamed.tokens_completion == 5
    spent = generation.cost_micro_usd + streamed.cost_micro_usd
    assert before - balance(workspace) == spent > 0


@pytest.mark.parametrize("stream", [False, True])
def test_cerebras_gets_the_raw_prompt_and_its_usage_is_billed(gateway_url, funded_key, sql_meter, stream):
    workspace, key = funded_key
    before = balance(workspace)
    scenario = Scenario(text=" Paris, of course.", prompt_tokens=6, completion_tokens=5)
    with openai_fake("cerebras", scenario) as fake:
        serve_model_from("test/cerebras-text", [("cerebras", fake.base_url)])
        answer = httpx.post(
            f"{gateway_url}/api/v1/completions",
            json={
                "model": "test/cerebras-text",
                "prompt": [PROMPT],
                "max_tokens": 20,
                "stop": "\n",
                "seed": 7,
                "echo": False,
                "stream": stream,
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    sent = fake.completion_requests[-1].body
    assert fake.chat_requests == []
    assert sent["prompt"] == PROMPT and sent["max_tokens"] == 20 and sent["stop"] == ["\n"]
    assert (sent["seed"], sent["echo"], sent["stream"]) == (7, False, stream)
    assert "reasoning_format" not in sent and "max_completion_tokens" not in sent
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.tokens_prompt, generation.tokens_completion) == (6, 5)
    assert before - balance(workspace) == generation.cost_micro_usd == 6 * 1 + 5 * 2
    if not stream:
        assert answer.json()["choices"][0]["text"] == " Paris, of course."
        assert answer.json()["usage"]["prompt_tokens"] == 6


def test_llamacpp_is_counted_by_its_own_probe_and_tokenizer(gateway_url, funded_key, sql_meter):
    _, key = funded_key
    scenario = Scenario(text="one two three four", prompt_tokens=9)
    with openai_fake("llamacpp", scenario, api_key="") as fake:
        serve_model_from("test/llama-text", [("llamacpp", fake.base_url)])
        chunks = list(
            client(gateway_url, key).completions.create(model="test/llama-text", prompt=PROMPT, stream=True)
        )
    assert "".join(c.text for chunk in chunks for c in chunk.choices) == "one two three four"
    probe = [r.body for r in fake.completion_requests if r.body.get("stream") is False]
    assert probe == [{"model": "fake-model", "prompt": PROMPT, "stream": False, "max_tokens": 1}]
    # The fake's tokenizer: a token a word plus BOS; the gateway takes the BOS off.
    assert chunks[-1].usage.prompt_tokens == 9 and chunks[-1].usage.completion_tokens == 4


def test_providers_without_the_endpoint_are_skipped_or_refused_by_name(gateway_url, funded_key, sql_meter):
    workspace, key = funded_key
    before = balance(workspace)
    with openai_fake("fireworks") as fireworks, openai_fake("cerebras") as cerebras:
        serve_model_from("test/fireworks-only", [("fireworks", fireworks.base_url)])
        serve_model_from(
            "test/fireworks-then-cerebras",
            [("fireworks", fireworks.base_url), ("cerebras", cerebras.base_url)],
        )
        sdk = client(gateway_url, key)
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.completions.create(model="test/fireworks-only", prompt=PROMPT)
        served = sdk.completions.with_raw_response.create(model="test/fireworks-then-cerebras", prompt=PROMPT)
    error = refused.value.body
    assert error["param"] == "model" and error["code"] == "invalid_request"
    assert "no text completions endpoint" in error["message"]
    assert fireworks.requests == [] and len(cerebras.completion_requests) == 1
    assert served.parse().choices[0].text == Scenario().text
    # Only the served request is billed, and nothing stays held for the refused one.
    generation = settled_generation(served.headers["x-request-id"])
    assert before - balance(workspace) == generation.cost_micro_usd == 12 * 1 + 7 * 2
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt[0]"),
        ({"prompt": PROMPT, "n": 2}, "n"),
        ({"prompt": PROMPT, "logprobs": 3}, "logprobs"),
        ({"prompt": PROMPT, "best_of": 2}, "best_of"),
        ({"prompt": PROMPT, "max_tokens": 0}, "max_tokens"),
        ({}, "prompt"),  # missing: named too
    ],
)
def test_bad_input_names_the_field(gateway_url, funded_key, body, field):
    _, key = funded_key
    answer = httpx.post(
        f"{gateway_url}/api/v1/completions",
        json={"model": "hyperinfer/sandbox", **body},
        headers={"Authorization": f"Bearer {key}"},
    )
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == "invalid_request"
    assert error["param"] == field and error["message"].startswith(f"{field}: ")


def _llama_reachable() -> bool:
    try:
        return bool(LLAMA_URL) and httpx.get(f"{LLAMA_URL}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(not _llama_reachable(), reason="no llama-cpp-python server: set LLAMACPP_TEST_URL")
@pytest.mark.parametrize("stream", [False, True])
def test_the_real_llamacpp_server_is_billed_its_own_count(gateway_url, funded_key, stream):
    workspace, key = funded_key
    serve_model_from("test/llama-real-text", [("llamacpp", f"{LLAMA_URL}/v1")])
    before = balance(workspace)
    body = {"prompt": "Paris is the capital of", "max_tokens": 12, "temperature": 0}
    answer = httpx.post(
        f"{gateway_url}/api/v1/completions",
        json={**body, "model": "test/llama-real-text", "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    direct = httpx.post(f"{LLAMA_URL}/v1/completions", json=body, timeout=120).json()
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.tokens_prompt, generation.tokens_completion) == (
        direct["usage"]["prompt_tokens"],
        direct["usage"]["completion_tokens"],
    )
    assert generation.tokens_completion > 0
    assert before - balance(workspace) == generation.cost_micro_usd > 0
    if not stream:  # (the text itself may differ: the server's prompt cache changes greedy decoding a little)
        answered = answer.json()
        assert answered["choices"][0]["text"].strip()
        assert answered["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]

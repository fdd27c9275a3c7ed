"""The official OpenAI SDK against the gateway, end to end on the sandbox model."""

import httpx
import openai
import pytest

from billing.models import CreditAccount, LedgerEntry
from billing.selectors import account_for
from tests.gateway.conftest import settled_generation

MODEL = "hyperinfer/sandbox-pro"  # priced like a real model, so billing shows


def client_for(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)


def balance(workspace) -> int:
    """The balance the user sees: with the Redis meter, debits not yet written to PostgreSQL included."""
    return account_for(workspace_id=workspace.pk).balance_micro_usd


def test_a_completion_is_billed_exactly_its_cost_and_its_metadata_is_served(gateway_url, funded_key):
    workspace, key = funded_key
    before = balance(workspace)
    raw = client_for(gateway_url, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]

    assert completion.id == f"gen-{request_id}"
    assert "You said: Say hello" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    cost = usage.model_extra["cost"]
    assert cost > 0

    metadata = httpx.get(
        f"{gateway_url}/api/v1/generation",
        params={"id": request_id},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["data"]
    assert metadata["model"] == MODEL and metadata["status"] == "completed"
    assert metadata["tokens_prompt"] == usage.prompt_tokens
    assert metadata["tokens_completion"] == usage.completion_tokens
    charged = int(metadata["cost_micro_usd"])
    assert charged == round(cost * 1_000_000)
    # 0.60 $/M prompt, 2.50 $/M completion, rounded up once.
    assert charged == -(-(usage.prompt_tokens * 60 + usage.completion_tokens * 250) // 100)
    assert before - balance(workspace) == charged
    settled_generation(request_id)  # written to PostgreSQL, in the same transaction as the ledger
    assert LedgerEntry.objects.get(reference=request_id).amount_micro_usd == -charged
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == before - charged


def test_a_stream_ends_with_usage_and_costs_the_same_as_its_record(gateway_url, funded_key):
    workspace, key = funded_key
    before = balance(workspace)
    stream = client_for(gateway_url, key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream please"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "You said: Stream please" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens > 0
    generation = settled_generation(final.id.removeprefix("gen-"))
    assert generation.streamed and generation.ttft_ms is not None
    assert generation.cost_micro_usd == round(final.usage.model_extra["cost"] * 1_000_000)
    assert before - balance(workspace) == generation.cost_micro_usd


def test_errors_come_in_the_openai_envelope_with_the_taxonomy_code(gateway_url, funded_key):
    _, key = funded_key
    with pytest.raises(openai.AuthenticationError) as bad_key:
        client_for(gateway_url, "hi-wrong").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert bad_key.value.body["code"] == "invalid_api_key"

    with pytest.raises(openai.BadRequestError) as bad_model:
        client_for(gateway_url, key).chat.completions.create(
            model="nope/nope", messages=[{"role": "user", "content": "x"}]
        )
    assert bad_model.value.body["code"] == "invalid_request" and bad_model.value.body["param"] == "model"

    with pytest.raises(openai.BadRequestError) as bad_role:
        client_for(gateway_url, key).chat.completions.create(
            model=MODEL, messages=[{"role": "robot", "content": "x"}]
        )
    assert bad_role.value.body["param"] == "messages[0].role"

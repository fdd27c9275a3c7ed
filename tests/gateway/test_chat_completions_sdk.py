"""The official OpenAI SDK against the gateway (chat completions): the sandbox model end to end, and signed
reasoning from an Anthropic upstream carried as reasoning_details."""

import httpx
import openai
import pytest

from billing.models import CreditAccount, LedgerEntry
from billing.selectors import account_for
from gateway.canonical import BlockStart, ReasoningDelta, Usage
from gateway.fold import Folded
from gateway.ingress import chat_completions
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.gateway.conftest import serve_model_from, settled_generation

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

    with pytest.raises(openai.NotFoundError) as bad_model:
        client_for(gateway_url, key).chat.completions.create(
            model="nope/nope", messages=[{"role": "user", "content": "x"}]
        )
    assert bad_model.value.body["code"] == "invalid_request" and bad_model.value.body["param"] == "model"

    with pytest.raises(openai.BadRequestError) as bad_role:
        client_for(gateway_url, key).chat.completions.create(
            model=MODEL, messages=[{"role": "robot", "content": "x"}]
        )
    assert bad_role.value.body["param"] == "messages[0].role"

    with pytest.raises(openai.BadRequestError) as no_messages:
        client_for(gateway_url, key).chat.completions.create(model=MODEL, messages=openai.NOT_GIVEN)
    assert no_messages.value.body["param"] == "messages"
    assert no_messages.value.body["message"] == "messages: 'messages' is a required property"


# --- Signed reasoning from an Anthropic upstream, sent back ------------------------------------------------
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def test_an_assistant_message_sent_back_replays_anthropic_thinking_with_its_signature(
    gateway_url, funded_key, monkeypatch
):
    """The SDK's own pattern, `messages.append(completion.choices[0].message)`: the message's
    reasoning_details carry the signature, without which Anthropic refuses the tool round trip."""
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "k")
    calls = AnthropicScenario(
        text="",
        thinking="Use the tool.",
        signature="sig-c",
        tool_use=ToolUse("get_weather", {}, id="t1"),
        api_key="k",
    )
    with anthropic_fake(calls, AnthropicScenario(text="Sunny.", api_key="k")) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        client = client_for(gateway_url, funded_key[1])
        messages: list = [{"role": "user", "content": "Weather?"}]
        options = {"model": "test/anthropic", "tools": [WEATHER], "reasoning_effort": "low"}
        first = client.chat.completions.create(messages=messages, **options).choices[0].message
        messages += [first, {"role": "tool", "tool_call_id": "t1", "content": "sunny"}]
        second = client.chat.completions.create(messages=messages, **options)
    assert first.model_extra["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": "Use the tool.",
            "signature": "sig-c",
            "format": "anthropic-claude-v1",
            "index": 0,
        }
    ]
    assert fake.requests[1].body["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-c"},
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
    ]
    assert second.choices[0].message.content == "Sunny."


def test_a_stream_carries_the_signature_and_a_redacted_block_as_reasoning_details(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "k")
    scenario = AnthropicScenario(
        text="Hi.", thinking="Hmm.", signature="sig-s", redacted_thinking="opaque", api_key="k"
    )
    with anthropic_fake(scenario, AnthropicScenario(text="Again.", api_key="k")) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        client = client_for(gateway_url, funded_key[1])
        chunks = list(
            client.chat.completions.create(
                model="test/anthropic", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        )
        deltas = [chunk.choices[0].delta.model_extra for chunk in chunks if chunk.choices]
        details = [detail for delta in deltas for detail in delta.get("reasoning_details") or []]
        reasoning = "".join(delta.get("reasoning") or "" for delta in deltas)
        assert reasoning == "Hmm."
        assert [(d["type"], d.get("data") or d.get("signature")) for d in details] == [
            ("reasoning.encrypted", "opaque"),
            ("reasoning.text", "sig-s"),
        ]
        # Sent back as a client rebuilds it from the stream: `reasoning` joined, the details as they came.
        assistant = {
            "role": "assistant",
            "content": "Hi.",
            "reasoning": reasoning,
            "reasoning_details": details,
        }
        client.chat.completions.create(
            model="test/anthropic",
            messages=[{"role": "user", "content": "Hi"}, assistant, {"role": "user", "content": "Again"}],
        )
    assert fake.requests[1].body["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig-s"},
        {"type": "text", "text": "Hi."},
    ]


def test_the_completion_lists_a_detail_for_each_signed_or_redacted_reasoning_block():
    answer = Folded()
    for event in (
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "", signature="opaque", redacted=True),
        BlockStart(1, "reasoning"),
        ReasoningDelta(1, "Hmm."),
        ReasoningDelta(1, "", signature="sig-2"),
        BlockStart(2, "reasoning"),
        ReasoningDelta(2, " More."),  # from another provider: unsigned, so no detail
    ):
        answer.add(event)
    completion = chat_completions.response_object(
        request_id="r", model="m", created=1, folded=answer, usage=Usage(1, 1), cost_usd=0.0
    )
    message = completion["choices"][0]["message"]
    assert message["reasoning"] == "Hmm. More."
    assert message["reasoning_details"] == [
        {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 0},
        {
            "type": "reasoning.text",
            "text": "Hmm.",
            "signature": "sig-2",
            "format": "anthropic-claude-v1",
            "index": 1,
        },
    ]

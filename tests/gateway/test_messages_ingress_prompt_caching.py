"""POST /api/v1/messages with prompt-cache breakpoints, through fake upstreams: what an Anthropic upstream and
an OpenAI dialect are sent, and the cache figures the official Anthropic SDK gets back."""

import json

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation
from tests.gateway.messages_ingress_client import KEY, WEATHER_TOOL, client_for

# --- Prompt caching ---------------------------------------------------------------------------------------
CACHE = {"type": "ephemeral"}


def cached_request(model: str) -> dict:
    return {
        "model": model,
        "max_tokens": 100,
        "system": [{"type": "text", "text": "A long, stable preamble.", "cache_control": CACHE}],
        "tools": [{**WEATHER_TOOL, "cache_control": CACHE}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?", "cache_control": CACHE}]}
        ],
    }


def test_cache_breakpoints_reach_anthropic_and_its_cache_figures_come_back(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    scenario = AnthropicScenario(
        text="Sunny.",
        input_tokens=4,
        cache_read_input_tokens=900,
        cache_creation_input_tokens=100,
        api_key=KEY,
    )
    with anthropic_fake(scenario) as fake:
        serve_model_from("test/anthropic", [("anthropic", fake.url + "/v1")])
        message = client_for(gateway_url, funded_key[1]).messages.create(**cached_request("test/anthropic"))
    sent = fake.requests[0].body
    assert sent["system"] == [{"type": "text", "text": "A long, stable preamble.", "cache_control": CACHE}]
    assert sent["tools"][0]["cache_control"] == CACHE
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "Weather?", "cache_control": CACHE}]
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        4,
        900,
        100,
    )
    generation = settled_generation(message.id.removeprefix("msg_"))
    assert (generation.tokens_prompt, generation.tokens_cached_prompt) == (1004, 900)


def test_cache_breakpoints_are_dropped_for_an_openai_dialect(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    with openai_fake("fireworks", Scenario(text="Sunny."), api_key=KEY) as fake:
        serve_model_from("test/fireworks", [("fireworks", fake.base_url)])
        message = client_for(gateway_url, funded_key[1]).messages.create(**cached_request("test/fireworks"))
    sent = fake.chat_requests[0].body
    assert "cache_control" not in json.dumps(sent)
    assert sent["messages"][0] == {"role": "system", "content": "A long, stable preamble."}
    assert message.content[0].text == "Sunny."

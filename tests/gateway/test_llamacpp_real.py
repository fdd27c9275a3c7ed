"""Against a real llama-cpp-python server, when one is reachable (`LLAMACPP_TEST_URL`, e.g. http://127.0.0.1:8090).

CI starts one (`.ci/llamacpp-server`: SmolLM2-135M with tool calling, built once and cached outside the
repository). Each test asks the gateway, then asks the server directly, not streamed, with the same
deterministic request, and compares the tokens billed with the server's own count.
"""

import os

import httpx
import openai
import pytest

from tests.gateway.conftest import serve_model_from, settled_generation

URL = os.environ.get("LLAMACPP_TEST_URL", "").rstrip("/")


def _reachable() -> bool:
    try:
        return httpx.get(f"{URL}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


pytestmark = pytest.mark.skipif(
    not URL or not _reachable(),
    reason="no llama-cpp-python server: set LLAMACPP_TEST_URL to one that is running",
)


def test_a_real_llamacpp_server_answers_through_the_gateway_with_exact_usage(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "")
    _, key = funded_key
    serve_model_from("test/llamacpp-real", [("llamacpp", f"{URL}/v1")])
    messages = [{"role": "user", "content": "Tell me a story about the sea, please"}]
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="test/llamacpp-real", max_tokens=16, temperature=0, seed=7, messages=messages
    )
    completion = raw.parse()
    assert completion.choices[0].finish_reason in ("stop", "length")

    # The server's own count for the same deterministic request, asked directly and not streamed.
    direct = httpx.post(
        f"{URL}/v1/chat/completions",
        json={"messages": messages, "max_tokens": 16, "temperature": 0, "seed": 7},
        timeout=60,
    ).json()
    assert completion.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert completion.usage.completion_tokens == direct["usage"]["completion_tokens"]
    assert (
        settled_generation(raw.headers["x-request-id"]).tokens_completion
        == completion.usage.completion_tokens
    )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}


def direct_usage(body: dict) -> dict:
    answer = httpx.post(f"{URL}/v1/chat/completions", json={**body, "stream": False}, timeout=120).json()
    return answer["usage"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "case",
    [
        {"messages": [{"role": "user", "content": "Write 東京 🍣 東京 🍣 東京 🍣"}], "max_tokens": 40},
        {"messages": [{"role": "user", "content": "Weather in Paris?"}], "max_tokens": 30,
         "tools": [WEATHER_TOOL], "tool_choice": FORCED},
    ],
    ids=["non-ascii", "forced-tool-call"],
)  # fmt: skip
def test_tokens_billed_are_the_servers_own_count(gateway_url, funded_key, monkeypatch, case, stream):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "")
    _, key = funded_key
    serve_model_from("test/llamacpp-real", [("llamacpp", f"{URL}/v1")])
    body = {**case, "temperature": 0, "seed": 7}
    answer = httpx.post(
        f"{gateway_url}/api/v1/chat/completions",
        json={**body, "model": "test/llamacpp-real", "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    generation = settled_generation(answer.headers["x-request-id"])
    usage = direct_usage(body)
    assert (generation.tokens_prompt, generation.tokens_completion) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert generation.tokens_completion > 0


WEATHER_PARAMETERS = WEATHER_TOOL["function"]["parameters"]
FORMAT_REQUESTS = {
    "responses": (
        "/api/v1/responses",
        {
            "input": "Weather in Paris?",
            "max_output_tokens": 30,
            "temperature": 0,
            "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMETERS}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        },
    ),
    "messages": (
        "/api/v1/messages",
        {
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "max_tokens": 30,
            "temperature": 0,
            "tools": [{"name": "get_weather", "input_schema": WEATHER_PARAMETERS}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
        },
    ),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", list(FORMAT_REQUESTS))
def test_a_forced_tool_call_in_the_other_formats_bills_the_servers_count(
    gateway_url, funded_key, monkeypatch, fmt, stream
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "")
    _, key = funded_key
    serve_model_from("test/llamacpp-real", [("llamacpp", f"{URL}/v1")])
    path, body = FORMAT_REQUESTS[fmt]
    answer = httpx.post(
        f"{gateway_url}{path}",
        json={**body, "model": "test/llamacpp-real", "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    generation = settled_generation(answer.headers["x-request-id"])
    usage = direct_usage(
        {
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "max_tokens": 30,
            "temperature": 0,
            "tools": [WEATHER_TOOL],
            "tool_choice": FORCED,
        }
    )
    assert generation.ingress_format == {"responses": "responses", "messages": "anthropic_messages"}[fmt]
    assert (generation.tokens_prompt, generation.tokens_completion) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )

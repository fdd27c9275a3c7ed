"""A streamed request whose upstream is slow to start gets its headers and keep-alive comments at once, so
idle-timeout proxies keep it open; the route's fallback still works after that, and an error then ends
the stream in-band."""

import json
import time

import httpx
import pytest

from catalog.models import Provider
from gateway.catalog_cache import catalog_cache
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

MODEL = "test/slow-start"


@pytest.fixture
def short_keepalive(settings):
    settings.GATEWAY_KEEPALIVE_SECONDS = 0.3


def stream(gateway_url: str, key: str) -> tuple[float, float, str, httpx.Response]:
    """(seconds to the headers, seconds to the first keep-alive, the body, the response)."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{gateway_url}/api/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        headers_at = time.monotonic() - started
        text, keepalive_at = "", None
        for chunk in response.iter_text():
            if keepalive_at is None and ": keep-alive" in text + chunk:
                keepalive_at = time.monotonic() - started
            text += chunk
    return headers_at, keepalive_at or float("inf"), text, response


def content_of(text: str) -> str:
    """The answer's text, from a chat completions stream."""
    frames = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: {")]
    deltas = [(json.loads(frame)["choices"] or [{}])[0].get("delta") or {} for frame in frames]
    return "".join(delta.get("content") or "" for delta in deltas)


def test_a_slow_first_token_gets_headers_and_keep_alives_first(
    gateway_url, funded_key, monkeypatch, short_keepalive
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure="slow_first_byte", delay=1.5)) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        headers_at, keepalive_at, text, response = stream(gateway_url, key)
    assert response.status_code == 200
    assert headers_at < 1.0 and keepalive_at < 1.0  # long before the upstream's first byte at 1.5 s
    assert text.index(": keep-alive") < text.index('"content":"Hello')
    assert text.rstrip().endswith("data: [DONE]")
    assert settled_generation(response.headers["x-request-id"]).status == "completed"


def test_after_keep_alives_the_next_route_still_answers(
    gateway_url, funded_key, monkeypatch, short_keepalive
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    with (
        openai_fake("cerebras", Scenario(failure="slow_first_byte", delay=10)) as silent,
        openai_fake("fireworks", Scenario(text="From the second route.")) as second,
    ):
        serve_model_from(MODEL, [("cerebras", silent.base_url), ("fireworks", second.base_url)])
        Provider.objects.filter(slug=f"{MODEL.replace('/', '-')}-0").update(timeout_seconds=1)
        catalog_cache.invalidate()
        _, keepalive_at, text, response = stream(gateway_url, key)
    assert response.status_code == 200 and keepalive_at < 1.0
    assert content_of(text) == "From the second route."
    assert settled_generation(response.headers["x-request-id"]).provider.endswith("-1")


def test_when_every_route_fails_after_keep_alives_the_stream_ends_with_the_error(
    gateway_url, funded_key, monkeypatch, short_keepalive
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure="slow_first_byte", delay=10)) as silent:
        serve_model_from(MODEL, [("cerebras", silent.base_url)])
        Provider.objects.filter(slug=f"{MODEL.replace('/', '-')}-0").update(timeout_seconds=1)
        catalog_cache.invalidate()
        _, keepalive_at, text, response = stream(gateway_url, key)
    assert response.status_code == 200 and keepalive_at < 1.0
    assert '"code":"provider_timeout"' in text.replace(" ", "") and text.rstrip().endswith("data: [DONE]")
    generation = settled_generation(response.headers["x-request-id"])
    assert (generation.status, generation.cost_micro_usd) == ("failed", 0)


def test_a_pause_mid_stream_gets_keep_alives_and_then_the_rest_of_the_answer(
    gateway_url, funded_key, monkeypatch, short_keepalive
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    scenario = Scenario(text="Hello there, world", failure="pause", delay=1.0)
    with openai_fake("cerebras", scenario) as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        _, _, text, response = stream(gateway_url, key)
    assert response.status_code == 200
    first_content = text.index('"content":"Hello')
    assert text.count(": keep-alive") >= 2  # ~1 s of silence at 0.3 s intervals
    assert first_content < text.index(": keep-alive")  # during the pause, after the first tokens
    assert content_of(text) == "Hello there, world"  # and nothing lost around them
    assert text.rstrip().endswith("data: [DONE]")
    assert settled_generation(response.headers["x-request-id"]).status == "completed"

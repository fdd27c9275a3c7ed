"""Fallback across routes and upstream cancellation, through the whole gateway against real fake servers."""

import asyncio
import json
import socket
import time

import httpx
import openai
from aiohttp import web

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.server import FakeServer
from tests.gateway.conftest import serve_model_from, settled_generation

KEY = "test-key"


def ask(url: str, key: str, model: str, **options):
    client = openai.OpenAI(base_url=f"{url}/api/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}], **options
    )


def test_when_the_first_route_fails_the_second_answers(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with (
        openai_fake("cerebras", Scenario(failure="server_error"), api_key=KEY) as broken,
        openai_fake("fireworks", Scenario(text="Answer from the second route"), api_key=KEY) as healthy,
    ):
        serve_model_from("test/fallback", [("cerebras", broken.base_url), ("fireworks", healthy.base_url)])
        raw = ask(gateway_url, key, "test/fallback")
        completion = raw.parse()

    assert completion.choices[0].message.content == "Answer from the second route"
    assert len(broken.chat_requests) == 1 and len(healthy.chat_requests) == 1
    generation = settled_generation(raw.headers["x-request-id"])
    assert generation.provider == "test-fallback-1" and generation.status == "completed"
    # The fake's usage, priced at $1/M prompt and $2/M completion.
    assert (generation.tokens_prompt, generation.tokens_completion) == (12, 7)
    assert generation.cost_micro_usd == 12 * 1 + 7 * 2


def test_a_route_whose_provider_no_adapter_serves_is_skipped_for_the_next(
    gateway_url, funded_key, monkeypatch
):
    """An operator edited a provider to a kind nothing serves (the loader would have refused it): the next
    route answers; with no next route, provider_unavailable in the envelope, not a 500."""
    from catalog.models import Provider
    from gateway.catalog_cache import catalog_cache

    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with openai_fake("fireworks", Scenario(text="From the healthy route"), api_key=KEY) as healthy:
        serve_model_from("test/orphan", [("cerebras", healthy.base_url), ("fireworks", healthy.base_url)])
        serve_model_from("test/orphan-only", [("cerebras", healthy.base_url)])
        Provider.objects.filter(slug__in=["test-orphan-0", "test-orphan-only-0"]).update(kind="retired")
        catalog_cache.invalidate()
        completion = ask(gateway_url, key, "test/orphan").parse()
        alone = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={"model": "test/orphan-only", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert completion.choices[0].message.content == "From the healthy route"
    assert alone.status_code == 502 and alone.json()["error"]["code"] == "provider_unavailable"
    assert "retired" in settled_generation(alone.headers["x-request-id"]).error_detail


def test_when_every_route_fails_the_last_error_is_returned_and_nothing_is_charged(
    gateway_url, funded_key, monkeypatch
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with (
        openai_fake("baseten", Scenario(failure="overloaded"), api_key=KEY) as first,
        anthropic_fake(AnthropicScenario(failure="rate_limit", api_key=KEY)) as second,
    ):
        serve_model_from("test/down", [("baseten", first.base_url), ("anthropic", second.url + "/v1")])
        response = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={"model": "test/down", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 429 and response.json()["error"]["code"] == "provider_rate_limit"
    generation = settled_generation(response.headers["x-request-id"])
    assert generation.cost_micro_usd == 0 and generation.error_code == "provider_rate_limit"


def test_an_error_after_the_first_byte_goes_into_the_stream(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure="stream_error"), api_key=KEY) as fake:
        serve_model_from("test/midstream", [("cerebras", fake.base_url)])
        with httpx.stream(
            "POST", f"{gateway_url}/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "test/midstream", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as response:  # fmt: skip
            frames = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200
    errors = [json.loads(f[6:]) for f in frames if f.startswith('data: {"error"')]
    assert errors and errors[0]["error"]["code"] == "provider_rate_limit"
    assert frames[-1] == "data: [DONE]"


class SlowUpstream:
    """An OpenAI-dialect upstream that streams 200 tokens, one every 20 ms, and notices when it is cut off."""

    def __init__(self) -> None:
        self.sent = 0
        self.cut_off = False
        self.finished = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for _ in range(200):
                chunk = {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}],
                }
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.sent += 1
                await asyncio.sleep(0.02)
            self.finished = True
        except (ConnectionResetError, asyncio.CancelledError):
            self.cut_off = True
            raise
        return response


def test_a_client_disconnect_cancels_the_upstream_request(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    upstream = SlowUpstream()
    with FakeServer(upstream.app()) as server:
        serve_model_from("test/slow", [("openai_compatible", server.url + "/v1")])
        host, port = gateway_url.removeprefix("http://").split(":")
        body = json.dumps(
            {"model": "test/slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        )
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            received = b""
            while received.count(b"data: ") < 6:
                received += sock.recv(65536)
            request_id = received.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
        deadline = time.monotonic() + 5
        while not upstream.cut_off and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.cut_off and not upstream.finished
        assert upstream.sent < 100

    generation = settled_generation(request_id)
    assert generation.status == "cancelled"
    # Billed for the tokens that came through before the disconnect, no more: $2/M each, plus the prompt.
    assert 5 <= generation.tokens_completion <= upstream.sent
    assert generation.cost_micro_usd == generation.tokens_prompt * 1 + generation.tokens_completion * 2


class PausingUpstream(SlowUpstream):
    """One token, a pause, then the rest: the gateway must keep the client's connection alive meanwhile."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for content, finish in ((" first", None), (None, None), (" second", "stop")):
            if content is None:
                await asyncio.sleep(0.6)
                continue
            delta = {"content": content}
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        await response.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response


def test_a_silent_upstream_gets_keep_alive_comments_sent_to_the_client(
    gateway_url, funded_key, monkeypatch, settings
):
    settings.GATEWAY_KEEPALIVE_SECONDS = 0.2
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    _, key = funded_key
    with FakeServer(PausingUpstream().app()) as server:
        serve_model_from("test/pausing", [("openai_compatible", server.url + "/v1")])
        with httpx.stream(
            "POST", f"{gateway_url}/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "test/pausing", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as response:  # fmt: skip
            lines = [line for line in response.iter_lines() if line]
    keepalives = [i for i, line in enumerate(lines) if line.startswith(":")]
    first = next(i for i, line in enumerate(lines) if "first" in line)
    second = next(i for i, line in enumerate(lines) if "second" in line)
    assert keepalives and all(first < i < second for i in keepalives)
    assert lines[-1] == "data: [DONE]"


def test_a_route_without_its_key_on_this_deployment_is_skipped_and_never_called(
    gateway_url, funded_key, monkeypatch
):
    from catalog.models import Provider
    from gateway.catalog_cache import catalog_cache

    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    monkeypatch.delenv("HYPERINFER_TEST_UNSET_KEY", raising=False)
    _, key = funded_key
    with (
        openai_fake("cerebras", Scenario(text="never"), api_key=KEY) as keyless,
        openai_fake("fireworks", Scenario(text="From the configured route"), api_key=KEY) as configured,
    ):
        serve_model_from("test/keyless", [("cerebras", keyless.base_url), ("fireworks", configured.base_url)])
        Provider.objects.filter(slug="test-keyless-0").update(credentials_env="HYPERINFER_TEST_UNSET_KEY")
        catalog_cache.invalidate()
        completion = ask(gateway_url, key, "test/keyless").parse()
    assert completion.choices[0].message.content == "From the configured route"
    assert keyless.chat_requests == [] and len(configured.chat_requests) == 1

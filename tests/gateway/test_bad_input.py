"""Bad input and the gateway's own bugs never end in a bare 500: each answer is a 4xx in the format's
envelope, or internal_error in it (in the stream once one is open), with the request id; nothing is billed;
the server stays up."""

import json

import httpx
import pytest

from billing.selectors import account_balance
from gateway.ingress import chat_completions
from gateway.models import Generation
from tests.gateway.conftest import settled_generation

MODEL = "hyperinfer/sandbox-pro"
PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}


def body_with(fmt: str, content: str, stream: bool) -> str:
    """A request whose one user message is `content`, written as raw JSON text (escapes stay as written)."""
    if fmt == "responses":
        return f'{{"model": "{MODEL}", "stream": {json.dumps(stream)}, "input": "{content}"}}'
    extra = ', "max_tokens": 50' if fmt == "messages" else ""
    messages = f'[{{"role": "user", "content": "{content}"}}]'
    return f'{{"model": "{MODEL}", "stream": {json.dumps(stream)}, "messages": {messages}{extra}}}'


def post(gateway_url: str, key: str, fmt: str, raw: str | bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return httpx.post(gateway_url + PATHS[fmt], content=raw, headers=headers, timeout=30)


def error_of(answer: httpx.Response) -> dict:
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:200]
    assert answer.headers["x-request-id"]
    return answer.json()["error"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", list(PATHS))
def test_malformed_bodies_get_invalid_request_in_the_formats_envelope(gateway_url, funded_key, fmt, stream):
    workspace, key = funded_key
    bad = {
        "deeply nested": b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "lone surrogate": body_with(fmt, "caf\\ud800e", stream),
        "lone low surrogate": body_with(fmt, "\\udc00 alone", stream),
        "NaN": body_with(fmt, "hi", stream).replace('"stream"', '"temperature": NaN, "stream"'),
        "Infinity": body_with(fmt, "hi", stream).replace('"stream"', '"temperature": Infinity, "stream"'),
        "invalid UTF-8": body_with(fmt, "hi", stream).encode().replace(b"hi", b"h\xff\xfei"),
    }
    for name, raw in bad.items():
        answer = post(gateway_url, key, fmt, raw)
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:200])
        assert error_of(answer)["code"] == "invalid_request", name
    # A surrogate pair is text (an emoji): served.
    good = post(gateway_url, key, fmt, body_with(fmt, "\\ud83d\\ude00", stream))
    assert good.status_code == 200
    settled_generation(good.headers["x-request-id"])
    assert Generation.objects.filter(workspace=workspace).count() == 1  # only the good one ran


def test_a_bug_before_the_answer_is_internal_error_in_the_envelope_and_costs_nothing(
    gateway_url, funded_key, monkeypatch
):
    workspace, key = funded_key

    def broken(**_):
        raise RuntimeError("a bug in rendering")

    monkeypatch.setattr(chat_completions, "response_object", broken)
    answer = post(gateway_url, key, "chat", body_with("chat", "hi", False))
    assert answer.status_code == 500
    error = error_of(answer)
    assert error["code"] == "internal_error" and "a bug" not in error["message"]  # the detail is in the log
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.status, generation.error_code, generation.cost_micro_usd) == (
        "failed",
        "internal_error",
        0,
    )
    assert account_balance(workspace_id=workspace.pk) == 5_000_000
    monkeypatch.undo()
    assert post(gateway_url, key, "chat", body_with("chat", "hi", False)).status_code == 200  # still up


def test_a_bug_mid_stream_ends_the_stream_with_an_error_event(gateway_url, funded_key, monkeypatch):
    workspace, key = funded_key
    render = chat_completions.ChunkRenderer.render
    calls = {"n": 0}

    def breaks_on_the_third(self, event):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("a bug mid-stream")
        return render(self, event)

    monkeypatch.setattr(chat_completions.ChunkRenderer, "render", breaks_on_the_third)
    answer = post(gateway_url, key, "chat", body_with("chat", "hello there friend", True))
    assert answer.status_code == 200  # the stream had begun
    frames = [line.removeprefix("data: ") for line in answer.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"  # a complete stream, ended by an error frame
    assert json.loads(frames[-2])["error"]["code"] == "internal_error", frames[-3:]
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.status, generation.cost_micro_usd) == ("failed", 0)
    assert account_balance(workspace_id=workspace.pk) == 5_000_000


def _with_field(fmt: str, stream: bool, **fields) -> bytes:
    body = json.loads(body_with(fmt, "hi", stream))
    return json.dumps({**body, **fields}).encode()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", list(PATHS))
def test_hostile_inputs_get_a_4xx_in_the_envelope_or_a_whole_answer_and_refusals_cost_nothing(
    gateway_url, funded_key, fmt, stream
):
    workspace, key = funded_key
    huge_text = "word " * 1_800_000  # 9 MB: under the body limit, far over the model's context
    refused = {
        # name: (raw body, Content-Type, expected status, expected code)
        "10 MB field": (body_with(fmt, "x" * (10 * 1024 * 1024), stream), None, 413, "payload_too_large"),
        "huge prompt": (body_with(fmt, huge_text, stream), None, 400, "context_length_exceeded"),
        "header injection in the model": (
            _with_field(fmt, stream, model=f"{MODEL}\r\nX-Injected: yes"),
            None,
            404,
            "invalid_request",
        ),
        "number overflowing to infinity": (
            body_with(fmt, "hi", stream).replace('"stream"', '"temperature": 1e400, "stream"'),
            None,
            400,
            "invalid_request",
        ),
        "form-encoded body": (
            b"model=x&messages=hi",
            "application/x-www-form-urlencoded",
            400,
            "invalid_request",
        ),
        "empty body": (b"", None, 400, "invalid_request"),
        "a JSON array": (b"[]", None, 400, "invalid_request"),
    }
    for name, (raw, content_type, status, code) in refused.items():
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type or "application/json"}
        answer = httpx.post(gateway_url + PATHS[fmt], content=raw, headers=headers, timeout=60)
        assert answer.status_code == status, (name, answer.status_code, answer.text[:300])
        assert error_of(answer)["code"] == code, name
        assert "x-injected" not in answer.headers, name
    # JSON sent as text/plain is still JSON: a whole answer, in the format it asked for.
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/plain"}
    answer = httpx.post(gateway_url + PATHS[fmt], content=body_with(fmt, "hi", stream), headers=headers)
    assert answer.status_code == 200
    if stream:
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "[DONE]" in answer.text or "message_stop" in answer.text or "response.completed" in answer.text
    else:
        assert answer.headers["content-type"].startswith("application/json") and answer.json()["id"]
    generation = settled_generation(answer.headers["x-request-id"])
    # Only that one ran, and only it was billed; the server is still up.
    assert Generation.objects.filter(workspace=workspace).count() == 1
    assert account_balance(workspace_id=workspace.pk) == 5_000_000 - generation.cost_micro_usd
    assert httpx.get(gateway_url + "/healthz").status_code == 200

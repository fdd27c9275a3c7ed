"""A prompt that cannot fit the model's context is refused before anything is reserved or sent upstream
(context_length_exceeded, naming the format's prompt field); one that might fit is left to the upstream."""

import httpx
import pytest

from billing.models import Reservation
from billing.selectors import account_balance
from gateway.models import Generation
from tests.fakes.openai_dialects import openai_fake
from tests.gateway.conftest import serve_model_from

MODEL = "test/small-context"  # serve_model_from: 32,000 tokens of context
FORMATS = {
    "chat": (
        "/api/v1/chat/completions",
        "messages",
        lambda text: {"messages": [{"role": "user", "content": text}]},
    ),
    "responses": ("/api/v1/responses", "input", lambda text: {"input": text}),
    "messages": (
        "/api/v1/messages",
        "messages",
        lambda text: {"max_tokens": 100, "messages": [{"role": "user", "content": text}]},
    ),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_prompt_far_over_the_context_is_refused_before_anything_is_held(
    gateway_url, funded_key, monkeypatch, fmt
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    workspace, key = funded_key
    path, field, body = FORMATS[fmt]
    with openai_fake("cerebras") as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        huge = "lorem " * 250_000  # 1.5 MB of text: ~330k tokens, at least 93k
        answer = httpx.post(
            gateway_url + path,
            json={"model": MODEL, **body(huge)},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        upstream_calls = len(fake.chat_requests)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "32,000" in error["message"]
    if fmt != "messages":
        assert error["param"] == field
    assert upstream_calls == 0
    assert not Reservation.objects.filter(workspace=workspace).exists()
    assert not Generation.objects.filter(workspace=workspace).exists()
    assert account_balance(workspace_id=workspace.pk) == 5_000_000


def test_a_prompt_that_might_fit_goes_to_the_upstream(gateway_url, funded_key, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    with openai_fake("cerebras") as fake:
        serve_model_from(MODEL, [("cerebras", fake.base_url)])
        # 300k characters: 100k tokens by the high estimate, yet it could be 19k: the upstream decides.
        text = "x" * 300_000
        answer = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert len(fake.chat_requests) == 1
    assert answer.status_code == 200, answer.text

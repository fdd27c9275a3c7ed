"""Admission rules of the gateway, over real HTTP: auth forms, limits, validation, metadata, health."""

import time

import httpx
import pytest

from billing.models import CreditAccount
from console.models import ApiKey
from console.services.keys import api_key_create, api_key_revoke, playground_key_mint
from console.services.workspaces import workspace_lock
from tests.factories import make_user, make_workspace
from tests.gateway.conftest import settled_generation

SANDBOX = "hyperinfer/sandbox"
PRO = "hyperinfer/sandbox-pro"


def chat(
    url: str, key: str | None, body: dict | bytes | None = None, header: str = "bearer", **extra
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers = {
            "bearer": {"Authorization": f"Bearer {key}"},
            "x-api-key": {"x-api-key": key},
            "api-key": {"Authorization": f"Api-Key {key}"},
        }[header]
    payload = (
        body
        if body is not None
        else {"model": SANDBOX, "messages": [{"role": "user", "content": "hi"}], **extra}
    )
    if isinstance(payload, bytes):
        return httpx.post(f"{url}/api/v1/chat/completions", content=payload, headers=headers, timeout=20)
    return httpx.post(f"{url}/api/v1/chat/completions", json=payload, headers=headers, timeout=20)


def assert_error(response: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    if param is not None:
        assert error["param"] == param


@pytest.mark.parametrize("header", ["bearer", "x-api-key", "api-key"])
def test_every_key_header_form_is_accepted(gateway_url, funded_key, header):
    _, key = funded_key
    assert chat(gateway_url, key, header=header).status_code == 200


def test_missing_wrong_and_revoked_keys_get_invalid_api_key(gateway_url, funded_key):
    workspace, key = funded_key
    assert_error(chat(gateway_url, None), 401, "invalid_api_key")
    assert_error(chat(gateway_url, "hi-not-a-key"), 401, "invalid_api_key")
    assert chat(gateway_url, key).status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(workspace=workspace), acting_user=None)
    time.sleep(1.1)  # revocation takes effect across processes within a second
    assert_error(chat(gateway_url, key), 401, "invalid_api_key")


def test_a_locked_workspace_is_refused(gateway_url, funded_key):
    workspace, key = funded_key
    workspace_lock(workspace=workspace, reason="review")
    assert_error(chat(gateway_url, key), 403, "workspace_locked")


def first_refusal(gateway_url: str, key: str) -> httpx.Response:
    """Requests until the rate limit refuses one: the third of a window, or the third of the next when the
    minute turns meanwhile (the windows are fixed minutes)."""
    answers = [chat(gateway_url, key) for _ in range(3)]
    if answers[-1].status_code != 429:
        answers += [chat(gateway_url, key) for _ in range(3)]
    statuses = [answer.status_code for answer in answers]
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    return next(answer for answer in answers if answer.status_code == 429)


def test_model_allowlist_rate_limit_and_key_limit(gateway_url, transactional_db):
    workspace = make_workspace(credits_micro_usd=5_000_000)
    allow = api_key_create(workspace=workspace, name="a", created_by=None, allowed_models=[SANDBOX]).secret
    assert chat(gateway_url, allow).status_code == 200
    assert_error(
        chat(gateway_url, allow, {"model": PRO, "messages": [{"role": "user", "content": "x"}]}),
        403,
        "model_not_allowed",
        "model",
    )

    limited = api_key_create(workspace=workspace, name="r", created_by=None, rate_limit_rpm=2).secret
    refused = first_refusal(gateway_url, limited)
    assert_error(refused, 429, "rate_limit_exceeded")
    assert refused.reason_phrase == "Too Many Requests"
    # When to come back: the end of the key's one-minute window.
    reset = int(refused.headers["x-ratelimit-reset"])
    assert reset % 60 == 0 and 0 < reset - time.time() <= 61
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (refused.headers["x-ratelimit-limit"], refused.headers["x-ratelimit-remaining"]) == ("2", "0")

    capped = api_key_create(workspace=workspace, name="c", created_by=None, limit_micro_usd=1_000).secret
    # The worst case of a pro request (prompt + 32k max output at $2.50/M) is far above $0.001.
    assert_error(
        chat(gateway_url, capped, {"model": PRO, "messages": [{"role": "user", "content": "x"}]}),
        402,
        "key_limit_exceeded",
    )


def test_insufficient_credits_is_refused_before_going_upstream(gateway_url, transactional_db):
    workspace = make_workspace(credits_micro_usd=100)
    key = api_key_create(workspace=workspace, name="poor", created_by=None).secret
    assert_error(
        chat(gateway_url, key, {"model": PRO, "messages": [{"role": "user", "content": "x"}]}),
        402,
        "insufficient_credits",
    )
    # A free model still works, and a small max_tokens makes the worst case affordable.
    assert chat(gateway_url, key).status_code == 200
    small = {"model": PRO, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert chat(gateway_url, key, small).status_code == 200


def test_bad_requests_name_the_field(gateway_url, funded_key, settings):
    _, key = funded_key
    assert_error(chat(gateway_url, key, b"{not json"), 400, "invalid_request")
    assert_error(chat(gateway_url, key, b"[1, 2]"), 400, "invalid_request")
    assert_error(chat(gateway_url, key, {"model": SANDBOX}), 400, "invalid_request")
    assert_error(
        chat(gateway_url, key, {"model": SANDBOX, "messages": []}), 400, "invalid_request", "messages"
    )
    bad_temp = {"model": SANDBOX, "temperature": 7, "messages": [{"role": "user", "content": "x"}]}
    assert_error(chat(gateway_url, key, bad_temp), 400, "invalid_request", "temperature")
    bad_part = {"model": SANDBOX, "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    assert_error(chat(gateway_url, key, bad_part), 400, "invalid_request")
    huge = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (11 * 1024 * 1024) + b'"}]}'
    assert_error(chat(gateway_url, key, huge), 413, "payload_too_large")


def test_a_failing_upstream_costs_nothing_and_releases_the_hold(gateway_url, funded_key):
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    # local/llama-cpp routes to 127.0.0.1:8080, where nothing listens in the tests.
    response = chat(
        gateway_url, key, {"model": "local/llama-cpp", "messages": [{"role": "user", "content": "x"}]}
    )
    assert_error(response, 502, "provider_unavailable")
    generation = settled_generation(response.headers["x-request-id"])
    assert (generation.status, generation.error_code, generation.cost_micro_usd) == (
        "failed",
        "provider_unavailable",
        0,
    )
    account = CreditAccount.objects.get(workspace=workspace)
    assert (account.balance_micro_usd, account.reserved_micro_usd) == (before, 0)


def test_a_playground_key_works_once_and_is_recorded_with_its_source(gateway_url, transactional_db):
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    secret = playground_key_mint(workspace=workspace, user=owner, source="chat").secret
    first = chat(gateway_url, secret)
    assert first.status_code == 200
    assert settled_generation(first.headers["x-request-id"]).source == "chat"
    assert_error(chat(gateway_url, secret), 401, "invalid_api_key")


def test_tool_calls_and_reasoning_through_the_sandbox(gateway_url, funded_key):
    _, key = funded_key
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {
        "model": SANDBOX,
        "tools": tools,
        "tool_choice": "required",
        "messages": [{"role": "user", "content": "x"}],
    }
    choice = chat(gateway_url, key, body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and call["function"]["arguments"].startswith('{"input"')

    thinking = chat(gateway_url, key, reasoning_effort="low").json()
    assert thinking["choices"][0]["message"]["reasoning"]
    assert thinking["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_generation_metadata_is_private_to_the_workspace(gateway_url, funded_key):
    _, key = funded_key
    request_id = chat(gateway_url, key).headers["x-request-id"]
    other = api_key_create(workspace=make_workspace(), name="o", created_by=None).secret
    mine = httpx.get(
        f"{gateway_url}/api/v1/generation",
        params={"id": f"gen-{request_id}"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert mine.status_code == 200 and mine.json()["data"]["id"] == request_id
    theirs = httpx.get(
        f"{gateway_url}/api/v1/generation",
        params={"id": request_id},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "invalid_request"
    missing = httpx.get(f"{gateway_url}/api/v1/generation", headers={"Authorization": f"Bearer {key}"})
    assert_error_param = missing.json()["error"]
    assert missing.status_code == 400 and assert_error_param["param"] == "id"


def test_health_endpoints(gateway_url):
    assert httpx.get(f"{gateway_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert set(ready.json()["checks"].values()) == {"ok"}


def test_readiness_is_degraded_with_503_when_redis_is_down(gateway_url, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "degraded" and ready.json()["checks"]["redis"] == "down"


def test_a_long_end_user_id_is_recorded_truncated_and_the_request_still_settles(gateway_url, funded_key):
    _, key = funded_key
    response = chat(gateway_url, key, user="u" * 300)
    assert response.status_code == 200, response.text
    generation = settled_generation(response.headers["x-request-id"])
    assert generation.end_user == "u" * 200


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WITH_AN_IMAGE = {  # a question about an image, in each format: path, body, the field the refusal names
    "chat": (
        "/api/v1/chat/completions",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                    ],
                }
            ]
        },
        "messages",
    ),
    "responses": (
        "/api/v1/responses",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
                    ],
                }
            ]
        },
        "input",
    ),
    "messages: an image in a tool's result": (
        "/api/v1/messages",
        {
            "max_tokens": 16,
            "tools": [{"name": "camera", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "What does the camera see?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "camera", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                                }
                            ],
                        }
                    ],
                },
            ],
        },
        "messages",
    ),
}


@pytest.mark.parametrize("asked", list(WITH_AN_IMAGE))
def test_an_image_goes_only_to_a_model_that_takes_image_input(gateway_url, funded_key, asked):
    """A text-only model's server drops an image or reads its data as text, and the caller would pay for an
    answer that never saw it: refused before anything is held, naming the conversation's field. The same
    request to the model once the catalog lists it with `vision` is answered."""
    from catalog.models import Model
    from gateway.catalog_cache import catalog_cache

    workspace, key = funded_key
    path, body, field = WITH_AN_IMAGE[asked]
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    headers = {"Authorization": f"Bearer {key}"}
    refused = httpx.post(gateway_url + path, json={**body, "model": SANDBOX}, headers=headers, timeout=20)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith(
        f"{field}: {SANDBOX} takes text"
    )
    assert path == "/api/v1/messages" or error["param"] == field  # Anthropic's envelope has no `param`
    assert CreditAccount.objects.get(workspace=workspace).balance_micro_usd == before

    model = Model.objects.get(slug=SANDBOX)
    Model.objects.filter(pk=model.pk).update(features=[*model.features, "vision"])
    catalog_cache.invalidate()
    answered = httpx.post(gateway_url + path, json={**body, "model": SANDBOX}, headers=headers, timeout=20)
    assert answered.status_code == 200, answered.text


FUNCTION_F = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tool_choice": "required"}, "tool_choice: 'required' asks for a tool call, and no tools are given"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice: 'f' asks for a tool call, and no tools are given",
        ),
        (
            {"tools": [FUNCTION_F], "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice: names 'g', which is not among the tools (f)",
        ),
    ],
    ids=["required-without-tools", "named-without-tools", "named-unknown"],
)
def test_a_tool_choice_no_tool_can_answer_is_refused_naming_it(gateway_url, funded_key, extra, message):
    """OpenAI and Anthropic refuse these; upstreams left to them differ (the sandbox called another tool,
    llama.cpp failed with a 500): refused here, the same for every route."""
    _, key = funded_key
    refused = chat(gateway_url, key, **extra)
    assert_error(refused, 400, "invalid_request", "tool_choice")
    assert refused.json()["error"]["message"] == message


ALLOWED_CHOICES = [
    {"tool_choice": "auto"},
    {"tool_choice": "none"},
    {"tools": [FUNCTION_F], "tool_choice": "required"},
    {"tools": [FUNCTION_F], "tool_choice": {"type": "function", "function": {"name": "f"}}},
]


@pytest.mark.parametrize("extra", ALLOWED_CHOICES, ids=["auto", "none", "required", "named"])
def test_a_tool_choice_a_tool_can_answer_or_that_asks_for_none_is_served(gateway_url, funded_key, extra):
    _, key = funded_key
    assert chat(gateway_url, key, **extra).status_code == 200


def test_a_tool_choice_in_messages_and_responses_is_held_to_the_same_rule(gateway_url, funded_key):
    _, key = funded_key
    headers = {"Authorization": f"Bearer {key}"}
    messages = {
        "model": SANDBOX,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "g"},
    }
    refused = httpx.post(f"{gateway_url}/api/v1/messages", json=messages, headers=headers, timeout=20)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
    assert refused.json()["error"]["message"].startswith("tool_choice: names 'g'")
    responses = {"model": SANDBOX, "input": "hi", "tool_choice": "required"}
    refused = httpx.post(f"{gateway_url}/api/v1/responses", json=responses, headers=headers, timeout=20)
    assert_error(refused, 400, "invalid_request", "tool_choice")

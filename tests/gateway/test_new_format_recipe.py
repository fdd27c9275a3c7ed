"""docs/new-format.md's steps, followed for a dummy format: nothing else is needed for it to be served,
recorded, billed and documented."""

import types

import httpx
import pytest

from core.envelopes import openai_error_body
from gateway.ingress import chat_completions
from gateway.ingress.registry import format_names, format_register, format_unregister
from gateway.models import Generation
from gateway.openapi import FORMAT_OPERATIONS, Operation, encoded_document, openapi_document
from tests.gateway.conftest import settled_generation

PATH = "/api/v1/test/echo"


def echo_format() -> types.ModuleType:
    """Step 1: a module with the format's contract. This one speaks chat completions at another path."""
    module = types.ModuleType("echo_format")
    module.FORMAT = "echo_chat"
    module.PATH = PATH
    module.LABEL = "Echo (a test format)"
    module.PROMPT_FIELD = "messages"
    module.parse_request = chat_completions.parse_request
    module.response_object = chat_completions.response_object
    module.stream_renderer = chat_completions.stream_renderer
    module.error_body = openai_error_body
    return module


def echo_operation() -> Operation:
    """Step 3: its documentation."""
    return Operation(PATH, "post", {"operationId": "createEcho", "responses": {"200": {"description": "ok"}}})


@pytest.fixture
def echo(gateway_url):
    module = echo_format()
    format_register(module)  # step 2: the registry
    FORMAT_OPERATIONS[module.FORMAT] = echo_operation
    openapi_document.cache_clear()
    encoded_document.cache_clear()
    yield module
    format_unregister(module)
    del FORMAT_OPERATIONS[module.FORMAT]
    openapi_document.cache_clear()
    encoded_document.cache_clear()


def test_a_registered_format_is_served_recorded_billed_and_documented(gateway_url, funded_key, echo):
    workspace, key = funded_key
    body = {"model": "hyperinfer/sandbox-pro", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}

    answer = httpx.post(f"{gateway_url}{PATH}", json=body, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    streamed = httpx.post(f"{gateway_url}{PATH}", json={**body, "stream": True}, headers=headers, timeout=20)
    assert streamed.text.endswith("data: [DONE]\n\n")

    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.ingress_format, generation.workspace_id) == ("echo_chat", workspace.id)
    assert generation.cost_micro_usd > 0
    assert settled_generation(streamed.headers["x-request-id"]).streamed
    assert Generation.objects.filter(ingress_format="echo_chat").count() == 2
    refused = httpx.post(f"{gateway_url}{PATH}", json={"model": 1}, headers=headers, timeout=20)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"

    document = httpx.get(f"{gateway_url}/openapi.json", timeout=20).json()
    assert document["paths"][PATH]["post"]["operationId"] == "createEcho"
    ingress_format = document["paths"]["/api/v1/generation"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["properties"]["data"]["properties"]["ingress_format"]
    # The spec's three formats, and (marked as an extension) the others the gateway serves.
    extension = ingress_format["anyOf"][1]
    assert extension["x-hyperinfer-extension"] and "echo_chat" in extension["enum"]


def test_every_registered_format_is_documented():
    assert set(format_names()) == set(FORMAT_OPERATIONS)


def test_two_formats_cannot_share_a_path():
    clash = echo_format()
    clash.PATH = chat_completions.PATH
    with pytest.raises(ValueError, match="already has the path"):
        format_register(clash)

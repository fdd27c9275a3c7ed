"""A real llama-cpp-python server for the gateway's tests, when one is reachable (`LLAMACPP_TEST_URL`, e.g.
http://127.0.0.1:8090; CI starts one: `.ci/llamacpp-server`, SmolLM2-135M with tool calling, built once and
cached outside the repository). A test module marks itself `pytestmark = NEEDS_THE_SERVER`, asks for the
`llama_model` fixture (tests/gateway/conftest.py), and says its conversations as `Case`s in each of the
three formats."""

import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from billing.models import CreditAccount

URL = os.environ.get("LLAMACPP_TEST_URL", "").rstrip("/")
MODEL = "test/llamacpp-real"


def _reachable() -> bool:
    try:
        return httpx.get(f"{URL}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


NEEDS_THE_SERVER = pytest.mark.skipif(
    not URL or not _reachable(),
    reason="no llama-cpp-python server: set LLAMACPP_TEST_URL to one that is running",
)

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALL = {"id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
RESULT = "18 degrees and sunny"


@dataclass(frozen=True)
class Case:
    """One conversation, said in each format. `turns`: ("user", text), ("call", CALL), ("result", text)."""

    turns: list[tuple[str, Any]]
    max_tokens: int
    tools: bool = False
    forced: bool = False
    extra: dict = field(default_factory=dict)

    def chat(self) -> dict:
        """As the Chat Completions format and as the server itself take it."""
        messages: list[dict] = []
        for kind, value in self.turns:
            if kind == "user":
                messages.append({"role": "user", "content": value})
            elif kind == "call":
                function = {"name": value["name"], "arguments": json.dumps(value["input"])}
                tool_call = {"id": value["id"], "type": "function", "function": function}
                messages.append({"role": "assistant", "content": "", "tool_calls": [tool_call]})
            else:
                messages.append({"role": "tool", "tool_call_id": CALL["id"], "content": value})
        body: dict = {"messages": messages, "max_tokens": self.max_tokens, "temperature": 0}
        if self.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS}}
            ]
        if self.forced:
            body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
        return body

    def responses(self) -> dict:
        items: list[dict] = []
        for kind, value in self.turns:
            if kind == "user":
                items.append({"role": "user", "content": value})
            elif kind == "call":
                arguments = json.dumps(value["input"])
                items.append(
                    {
                        "type": "function_call",
                        "call_id": value["id"],
                        "name": value["name"],
                        "arguments": arguments,
                    }
                )
            else:
                items.append({"type": "function_call_output", "call_id": CALL["id"], "output": value})
        body: dict = {"input": items, "max_output_tokens": self.max_tokens, "temperature": 0}
        if self.tools:
            body["tools"] = [{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMETERS}]
        if self.forced:
            body["tool_choice"] = {"type": "function", "name": "get_weather"}
        return body

    def messages(self) -> dict:
        messages: list[dict] = []
        for kind, value in self.turns:
            if kind == "user":
                messages.append({"role": "user", "content": value})
            elif kind == "call":
                messages.append({"role": "assistant", "content": [{"type": "tool_use", **value}]})
            else:
                result = {"type": "tool_result", "tool_use_id": CALL["id"], "content": value}
                messages.append({"role": "user", "content": [result]})
        body: dict = {"messages": messages, "max_tokens": self.max_tokens, "temperature": 0}
        if self.tools:
            body["tools"] = [{"name": "get_weather", "input_schema": WEATHER_PARAMETERS}]
        if self.forced:
            body["tool_choice"] = {"type": "tool", "name": "get_weather"}
        return body


PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}
INGRESS_FORMATS = {"chat": "chat_completions", "responses": "responses", "messages": "anthropic_messages"}


def body_in(fmt: str, case: Case) -> dict:
    return {"chat": case.chat, "responses": case.responses, "messages": case.messages}[fmt]()


def direct_usage(body: dict) -> dict:
    """The server's own usage for the chat, asked directly and not streamed. Tools go with `tool_choice`
    "auto" where none is said, as the gateway sends them: without one the server leaves them out."""
    if body.get("tools"):
        body = {"tool_choice": "auto", **body}
    answer = httpx.post(f"{URL}/v1/chat/completions", json={**body, "stream": False}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["usage"]


def ask_gateway(gateway_url: str, key: str, fmt: str, body: dict, **fields) -> httpx.Response:
    """`body` in format `fmt` to the test model through the gateway, with `fields` (e.g. `stream`) added."""
    return httpx.post(
        gateway_url + PATHS[fmt],
        json={**body, "model": MODEL, **fields},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def balance(workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).balance_micro_usd

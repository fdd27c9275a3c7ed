"""The upstream side of the any-to-any matrix (tests/gateway/test_any_to_any.py): one real-HTTP fake per
dialect, how to read what it received, and the reasoning control each dialect is expected to receive."""

import json
from contextlib import contextmanager
from typing import Any

from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.gateway.any_to_any_conversation import CALL_ARGUMENTS, CALL_ID, KEY, MODEL
from tests.gateway.conftest import serve_model_from

# --- The upstream side: one fake per dialect, and how to read what it received -----------------------
OPENAI_DIALECTS = {
    "openai_compatible": "cerebras",  # a plain OpenAI-compatible server: the fake's wire format is the same
    "cerebras": "cerebras",
    "fireworks": "fireworks",
    "baseten": "baseten",
    "llamacpp": "llamacpp",
}
UPSTREAMS = [*OPENAI_DIALECTS, "anthropic"]


def _usage_probe(body: dict) -> bool:
    return body.get("stream") is False and body.get("max_tokens") == 1


class OpenAIUpstream:
    def __init__(self, kind: str, fake) -> None:
        self.kind, self.fake = kind, fake

    def answer_with(self, *, text: str = "", reasoning: str = "", tool_call: bool = False) -> None:
        calls = [FakeToolCall("get_weather", json.dumps(CALL_ARGUMENTS), id=CALL_ID)] if tool_call else []
        self.fake.scenario = Scenario(text=text, reasoning=reasoning, tool_calls=calls)

    def received(self) -> dict:
        """The last chat request, not counting llama.cpp's one-token usage probe that follows it."""
        return [r.body for r in self.fake.chat_requests if not _usage_probe(r.body)][-1]

    def last_user_text(self, body: dict) -> str:
        return _text_of(next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"])

    def tool_names(self, body: dict) -> list[str]:
        return [tool["function"]["name"] for tool in body.get("tools", [])]

    def tool_parameters(self, body: dict) -> dict:
        return body["tools"][0]["function"]["parameters"]

    def call_and_result(self, body: dict) -> tuple[str, str, dict, str, str]:
        """(assistant call id, name, arguments, tool result's call id, its text) in the second turn."""
        call = next(m for m in body["messages"] if m["role"] == "assistant")["tool_calls"][0]
        result = next(m for m in body["messages"] if m["role"] == "tool")
        arguments = json.loads(call["function"]["arguments"])
        return (
            call["id"],
            call["function"]["name"],
            arguments,
            result["tool_call_id"],
            _text_of(result["content"]),
        )

    def reasoning_control(self, body: dict) -> Any:
        return {k: body[k] for k in ("reasoning_effort", "thinking", "reasoning_format") if k in body}


class AnthropicUpstream:
    kind = "anthropic"

    def __init__(self, fake) -> None:
        self.fake = fake

    def answer_with(self, *, text: str = "", reasoning: str = "", tool_call: bool = False) -> None:
        tool = ToolUse("get_weather", CALL_ARGUMENTS, id=CALL_ID) if tool_call else None
        self.fake.scenarios = [AnthropicScenario(text=text, thinking=reasoning or None, tool_use=tool)]

    def received(self) -> dict:
        return self.fake.requests[-1].body

    def last_user_text(self, body: dict) -> str:
        return _text_of(body["messages"][-1]["content"])

    def tool_names(self, body: dict) -> list[str]:
        return [tool["name"] for tool in body.get("tools", [])]

    def tool_parameters(self, body: dict) -> dict:
        return body["tools"][0]["input_schema"]

    def call_and_result(self, body: dict) -> tuple[str, str, dict, str, str]:
        blocks = [
            block for message in body["messages"] for block in message["content"] if isinstance(block, dict)
        ]
        call = next(b for b in blocks if b["type"] == "tool_use")
        result = next(b for b in blocks if b["type"] == "tool_result")
        return call["id"], call["name"], call["input"], result["tool_use_id"], _text_of(result["content"])

    def reasoning_control(self, body: dict) -> Any:
        return {"thinking": body["thinking"]} if "thinking" in body else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


@contextmanager
def upstream(kind: str, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    if kind == "anthropic":
        with anthropic_fake(AnthropicScenario(api_key=KEY)) as fake:
            serve_model_from(MODEL, [("anthropic", fake.url + "/v1")])
            yield AnthropicUpstream(fake)
        return
    with openai_fake(OPENAI_DIALECTS[kind], api_key=KEY) as fake:
        serve_model_from(MODEL, [(kind, fake.base_url)])
        yield OpenAIUpstream(kind, fake)


# What each dialect receives when the client asks for a little reasoning (chat/responses: effort "low";
# messages: a 1024-token budget). Baseten's and llama.cpp's APIs have no reasoning control: nothing is sent
# (documented in docs/translation.md); their models reason or not on their own.
def expected_reasoning_control(kind: str, client_format: str) -> dict:
    if kind == "anthropic":
        return {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    if kind in ("baseten", "llamacpp"):
        return {}
    if kind == "fireworks" and client_format == "messages":
        return {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    control = {"reasoning_effort": "low"}
    return {**control, "reasoning_format": "parsed"} if kind == "cerebras" else control

"""A non-streamed answer is the fold of the upstream's events, block by block, in the order it sent them.

Each dialect's fake answers text, then a tool call, then text again. In each ingress format, the answer
keeps that order where the format can say it (Messages: content blocks; Responses: output items; Chat
Completions has one message, so its text is joined in order and its tool calls listed in order). A
non-streamed request asks the upstream for its whole answer (ADR 0019): Anthropic's Message keeps the order
of its blocks, so the whole answer equals what a client assembles from the streamed one; an OpenAI-style
`message` has one `content` and its `tool_calls` beside it, so the order within it is text, then calls.
"""

import json
from contextlib import contextmanager

import httpx
import pytest

from gateway.canonical import BlockStart, BlockStop, Finish, ReasoningDelta, TextDelta, Usage
from gateway.fold import Folded
from gateway.ingress.chat_completions import ChunkRenderer, response_object
from tests.fakes.anthropic_fake import Scenario as AnthropicScenario
from tests.fakes.anthropic_fake import ToolUse, anthropic_fake
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.fakes.openai_scenario import FakeToolCall
from tests.gateway.conftest import serve_model_from

MODEL = "test/block-order"
BEFORE, AFTER = "Let me look that up. ", "While it runs: Paris is lovely."
ARGUMENTS = {"city": "Paris"}
DIALECTS = {"cerebras": "cerebras", "fireworks": "fireworks", "baseten": "baseten", "llamacpp": "llamacpp"}
UPSTREAMS = [*DIALECTS, "anthropic"]


@contextmanager
def text_tool_text_upstream(kind: str, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    if kind == "anthropic":
        scenario = AnthropicScenario(
            text=BEFORE, tool_use=ToolUse("get_weather", ARGUMENTS), text_after_tool_use=AFTER
        )
        with anthropic_fake(scenario, scenario) as fake:
            serve_model_from(MODEL, [("anthropic", fake.url + "/v1")])
            yield
        return
    call = FakeToolCall("get_weather", json.dumps(ARGUMENTS))
    with openai_fake(
        DIALECTS[kind], Scenario(text=BEFORE, tool_calls=[call], text_after_tool_calls=AFTER)
    ) as fake:
        serve_model_from(MODEL, [(kind, fake.base_url)])
        yield


TOOLS = {
    "chat": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "responses": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
    "messages": [{"name": "get_weather", "input_schema": {"type": "object"}}],
}
PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}


def whole_order(upstream: str, in_order: list[tuple]) -> list[tuple]:
    """What a whole answer can say of [text, call, text]: all of it (Anthropic), or the text joined, then
    the call (an OpenAI-style message)."""
    if upstream == "anthropic":
        return in_order
    (kind, before), call, (_, after) = in_order
    return [(kind, before + after), call]


def streamed_order(upstream: str, in_order: list[tuple]) -> list[tuple]:
    """What a stream can say of it: all of it, but from llama.cpp, whose server cannot stream a tool choice
    left to the model, so the stream is made from the whole answer (upstreams/llamacpp.py)."""
    return whole_order(upstream, in_order) if upstream == "llamacpp" else in_order


def request_body(fmt: str, stream: bool) -> dict:
    body: dict = {"model": MODEL, "stream": stream, "tools": TOOLS[fmt]}
    if fmt == "responses":
        return {**body, "input": "Weather in Paris?"}
    return {**body, "max_tokens": 100, "messages": [{"role": "user", "content": "Weather in Paris?"}]}


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


# --- What a client assembles from each format's stream ------------------------------------------------
def fold_messages_stream(events: list[dict]) -> list[dict]:
    blocks: dict[int, dict] = {}
    for event in events:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "partial": ""}
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                block["partial"] += delta["partial_json"]
    content = []
    for _, block in sorted(blocks.items()):
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial or "{}")
        content.append(block)
    return content


def fold_responses_stream(events: list[dict]) -> list[dict]:
    [completed] = [event for event in events if event["type"] == "response.completed"]
    added = [event["item"]["type"] for event in events if event["type"] == "response.output_item.added"]
    output = completed["response"]["output"]
    assert [item["type"] for item in output] == added  # the final output lists the items as they came
    return output


def fold_chat_stream(events: list[dict]) -> dict:
    text, calls = "", {}
    for event in events:
        for choice in event["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": call.get("id"), "name": "", "arguments": ""})
                entry["name"] += (call.get("function") or {}).get("name") or ""
                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
    return {"content": text, "tool_calls": [calls[index] for index in sorted(calls)]}


# --- The comparable shape of each format's non-streamed answer -----------------------------------------
def messages_shape(content: list[dict]) -> list[tuple]:
    return [
        ("text", block["text"]) if block["type"] == "text" else (block["type"], block.get("input"))
        for block in content
    ]


def responses_shape(output: list[dict]) -> list[tuple]:
    shapes = []
    for item in output:
        if item["type"] == "message":
            shapes.append(("message", "".join(part["text"] for part in item["content"])))
        else:
            shapes.append((item["type"], json.loads(item.get("arguments") or "null")))
    return shapes


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_messages_keep_text_tool_use_text_in_order(gateway_url, funded_key, monkeypatch, upstream):
    _, key = funded_key
    with text_tool_text_upstream(upstream, monkeypatch), httpx.Client(timeout=30) as client:
        headers = {"Authorization": f"Bearer {key}"}
        whole = client.post(
            gateway_url + PATHS["messages"], json=request_body("messages", False), headers=headers
        )
        streamed = client.post(
            gateway_url + PATHS["messages"], json=request_body("messages", True), headers=headers
        )
    assert whole.status_code == streamed.status_code == 200, whole.text
    expected = [("text", BEFORE), ("tool_use", ARGUMENTS), ("text", AFTER)]
    assert messages_shape(whole.json()["content"]) == whole_order(upstream, expected)
    assert messages_shape(fold_messages_stream(sse_data(streamed.text))) == streamed_order(upstream, expected)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_responses_keep_message_function_call_message_in_order(
    gateway_url, funded_key, monkeypatch, upstream
):
    _, key = funded_key
    with text_tool_text_upstream(upstream, monkeypatch), httpx.Client(timeout=30) as client:
        headers = {"Authorization": f"Bearer {key}"}
        whole = client.post(
            gateway_url + PATHS["responses"], json=request_body("responses", False), headers=headers
        )
        streamed = client.post(
            gateway_url + PATHS["responses"], json=request_body("responses", True), headers=headers
        )
    assert whole.status_code == streamed.status_code == 200, whole.text
    expected = [("message", BEFORE), ("function_call", ARGUMENTS), ("message", AFTER)]
    assert responses_shape(whole.json()["output"]) == whole_order(upstream, expected)
    folded = fold_responses_stream(sse_data(streamed.text))
    assert responses_shape(folded) == streamed_order(upstream, expected)
    if upstream != "anthropic":
        return
    # Item ids are numbered by position, the same in both.
    assert [item["id"] for item in whole.json()["output"]] == [
        item["id"].replace(streamed.headers["x-request-id"], whole.headers["x-request-id"])
        for item in fold_responses_stream(sse_data(streamed.text))
    ]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_chat_joins_the_text_in_order_and_lists_the_tool_call(gateway_url, funded_key, monkeypatch, upstream):
    _, key = funded_key
    with text_tool_text_upstream(upstream, monkeypatch), httpx.Client(timeout=30) as client:
        headers = {"Authorization": f"Bearer {key}"}
        whole = client.post(gateway_url + PATHS["chat"], json=request_body("chat", False), headers=headers)
        streamed = client.post(gateway_url + PATHS["chat"], json=request_body("chat", True), headers=headers)
    assert whole.status_code == streamed.status_code == 200, whole.text
    message = whole.json()["choices"][0]["message"]
    folded = fold_chat_stream(sse_data(streamed.text))
    calls = [
        {"id": call["id"], "name": call["function"]["name"], "arguments": call["function"]["arguments"]}
        for call in message["tool_calls"]
    ]
    assert message["content"] == folded["content"] == BEFORE + AFTER
    assert calls == folded["tool_calls"]
    assert [json.loads(call["arguments"]) for call in calls] == [ARGUMENTS]


def test_chat_numbers_reasoning_details_as_its_stream_does():
    """Only signed reasoning blocks get a detail; both the stream and the whole answer number them 0, 1, …"""
    events = [
        BlockStart(0, "reasoning"),
        ReasoningDelta(0, "unsigned thoughts"),
        BlockStop(0),
        BlockStart(1, "reasoning"),
        ReasoningDelta(1, "signed thoughts"),
        ReasoningDelta(1, "", signature="sig-1"),
        BlockStop(1),
        BlockStart(2, "text"),
        TextDelta(2, "Answer."),
        Finish("stop"),
    ]
    folded, renderer = Folded(), ChunkRenderer(request_id="r", model="m")
    streamed_details = []
    for event in events:
        folded.add(event)
        chunk = renderer.render(event)
        if chunk is not None:
            streamed_details += chunk["choices"][0]["delta"].get("reasoning_details", [])
    whole = response_object(
        request_id="r", model="m", created=0, folded=folded, usage=Usage(1, 1), cost_usd=0.0
    )
    details = whole["choices"][0]["message"]["reasoning_details"]
    assert details == streamed_details
    assert [(detail["index"], detail["text"]) for detail in details] == [(0, "signed thoughts")]

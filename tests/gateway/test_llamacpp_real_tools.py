"""Against a real llama-cpp-python server (tests/gateway/llamacpp_server.py): tools, as the server's chat
handler (chatml-function-calling) takes them through the gateway (gateway/upstreams/llamacpp.py)."""

import json

import httpx
import pytest

from billing.models import CreditAccount
from tests.gateway.conftest import settled_generation
from tests.gateway.llamacpp_server import (
    NEEDS_THE_SERVER,
    PATHS,
    Case,
    ask_gateway,
    balance,
    body_in,
    direct_usage,
)

pytestmark = NEEDS_THE_SERVER

TIME_TOOL = {"name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
CHOICES = {  # "auto", "required" and no choice at all, as each format says them
    "chat": {"auto": "auto", "required": "required"},
    "responses": {"auto": "auto", "required": "required"},
    "messages": {"auto": {"type": "auto"}, "required": {"type": "any"}},
}


def with_tools(fmt: str, choice: str | None, *, both: bool = False) -> dict:
    """A request for the weather with the weather tool (and the time tool, `both`), in `fmt`."""
    body = body_in(fmt, Case([("user", "What is the weather in Paris? Use the tool.")], 30, tools=True))
    if both:
        tool = TIME_TOOL
        body["tools"].append(
            {"type": "function", "function": tool}
            if fmt == "chat"
            else {"type": "function", **tool}
            if fmt == "responses"
            else {"name": tool["name"], "input_schema": tool["parameters"]}
        )
    if choice is not None:
        body["tool_choice"] = CHOICES[fmt][choice]
    return body


def calls_in(fmt: str, answer: httpx.Response) -> list[str]:
    """The names of the tools an answer calls, whole or streamed."""
    if answer.headers["content-type"].startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
        return [name for event in events if (name := streamed_call(fmt, event))]
    return whole_calls(fmt, answer.json())


def streamed_call(fmt: str, event: dict) -> str | None:
    """The name of the tool an event of a stream begins to call, if it begins one."""
    if fmt == "chat":
        calls = ((event.get("choices") or [{}])[0].get("delta") or {}).get("tool_calls") or []
        return next(
            (call["function"]["name"] for call in calls if call.get("function", {}).get("name")), None
        )
    if fmt == "responses":
        item = event.get("item") or {}
        return item.get("name") if event["type"] == "response.output_item.added" else None
    block = event.get("content_block") or {}
    return block.get("name") if block.get("type") == "tool_use" else None


def whole_calls(fmt: str, answer: dict) -> list[str]:
    if fmt == "chat":
        return [call["function"]["name"] for call in answer["choices"][0]["message"].get("tool_calls") or []]
    if fmt == "responses":
        return [item["name"] for item in answer["output"] if item["type"] == "function_call"]
    return [block["name"] for block in answer["content"] if block["type"] == "tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("choice", [None, "required"], ids=["unsaid", "required"])
@pytest.mark.parametrize("fmt", list(PATHS))
def test_tools_reach_the_model_without_a_choice_and_a_required_call_with_one_tool(
    gateway_url, funded_key, llama_model, fmt, choice, stream
):
    """The server's chat handler drops tools sent without `tool_choice` (the model never sees them) and fails
    on "required" (a 500 its assertion raises). Through the gateway, tools without a choice are offered
    (auto, as in OpenAI's and Anthropic's APIs): at temperature 0 this model then calls the weather tool, as
    it does when asked directly with "auto"; and a call required with one tool is a call to it. The server
    cannot stream a choice left to the model: such a stream is made from its whole answer."""
    _, key = funded_key
    answer = ask_gateway(gateway_url, key, fmt, with_tools(fmt, choice), stream=stream)
    assert answer.status_code == 200, answer.text
    assert calls_in(fmt, answer) == ["get_weather"]
    generation = settled_generation(answer.headers["x-request-id"])
    usage = direct_usage(with_tools("chat", None))  # offered with "auto": the tools are in its prompt
    assert generation.tokens_prompt == usage["prompt_tokens"]
    assert generation.tokens_prompt > direct_usage({**with_tools("chat", None), "tools": []})["prompt_tokens"]


@pytest.mark.parametrize("fmt", list(PATHS))
def test_a_call_required_among_several_tools_is_refused_naming_tool_choice(
    gateway_url, funded_key, llama_model, fmt
):
    """The server can require one named tool, not any of several: refused before it is asked, at no cost."""
    workspace, key = funded_key
    before = balance(workspace)
    answer = ask_gateway(gateway_url, key, fmt, with_tools(fmt, "required", both=True))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert fmt == "messages" or error["param"] == "tool_choice"  # Anthropic's envelope has no `param`
    assert error["message"].startswith("tool_choice:") and "name the tool" in error["message"]
    assert balance(workspace) == before
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 0

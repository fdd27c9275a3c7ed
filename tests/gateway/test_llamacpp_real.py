"""Against a real llama-cpp-python server, when one is reachable (`LLAMACPP_TEST_URL`, e.g. http://127.0.0.1:8090).

CI starts one (`.ci/llamacpp-server`: SmolLM2-135M with tool calling, built once and cached outside the
repository). Each test asks the gateway in one of its three formats, then asks the server directly, not
streamed, with the same deterministic chat, and compares the tokens billed with the server's own count, and
the balance drop with the generation's cost. The server streams no usage, and merges the tokens of a
character that spans several into one chunk, so only an exact count passes.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from billing.models import CreditAccount
from tests.gateway.conftest import no_leases_left, serve_model_from, settled_generation

URL = os.environ.get("LLAMACPP_TEST_URL", "").rstrip("/")
MODEL = "test/llamacpp-real"


def _reachable() -> bool:
    try:
        return httpx.get(f"{URL}/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


pytestmark = pytest.mark.skipif(
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


CASES = {
    "text": Case([("user", "Tell me a story about the sea, please")], max_tokens=16),
    "non-ascii": Case([("user", "Write 東京 🍣 東京 🍣 東京 🍣")], max_tokens=40),
    # The server generates past max_tokens while its text ends inside a character: 27 tokens for these 26.
    "past-the-limit": Case([("user", "Write emoji only: 🍣🍣🍣")], max_tokens=26),
    "forced-tool-call": Case([("user", "Weather in Paris?")], max_tokens=30, tools=True, forced=True),
    "tool-round-trip": Case(
        [("user", "Weather in Paris?"), ("call", CALL), ("result", RESULT)], max_tokens=30, tools=True
    ),
}
PATHS = {"chat": "/api/v1/chat/completions", "responses": "/api/v1/responses", "messages": "/api/v1/messages"}
INGRESS_FORMATS = {"chat": "chat_completions", "responses": "responses", "messages": "anthropic_messages"}


@pytest.fixture
def llama_model(gateway_url, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "")  # a local server without auth
    serve_model_from(MODEL, [("llamacpp", f"{URL}/v1")])


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


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", list(PATHS))
@pytest.mark.parametrize("case", list(CASES))
def test_tokens_billed_are_the_servers_own_count(gateway_url, funded_key, llama_model, case, fmt, stream):
    workspace, key = funded_key
    before = balance(workspace)
    answer = ask_gateway(gateway_url, key, fmt, body_in(fmt, CASES[case]), stream=stream)
    assert answer.status_code == 200, answer.text
    generation = settled_generation(answer.headers["x-request-id"])
    usage = direct_usage(CASES[case].chat())

    assert generation.status == "completed" and generation.ingress_format == INGRESS_FORMATS[fmt]
    assert (generation.tokens_prompt, generation.tokens_completion) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert generation.tokens_completion > 0
    assert before - balance(workspace) == generation.cost_micro_usd > 0


def test_the_openai_sdk_sees_the_servers_usage(gateway_url, funded_key, llama_model):
    _, key = funded_key
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key=key, max_retries=0)
    body = CASES["text"].chat()
    raw = client.chat.completions.with_raw_response.create(model=MODEL, **body)
    completion = raw.parse()
    assert completion.choices[0].finish_reason in ("stop", "length")
    usage = direct_usage(body)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert settled_generation(raw.headers["x-request-id"]).tokens_completion == usage["completion_tokens"]


@pytest.mark.parametrize("case", ["text", "non-ascii", "forced-tool-call"])
def test_a_whole_answer_is_what_the_stream_of_the_same_chat_adds_up_to(
    gateway_url, funded_key, llama_model, case
):
    """Not streamed, the gateway asks the server for the whole answer (ADR 0019); at temperature 0 it is the
    text and tool calls that the stream of the same chat delivers piece by piece. Measured: the server's
    greedy answer depends on whether its cache already held the prompt (a prompt evaluated afresh can give
    other words), so the chat is asked once first, and both answers below find it cached."""
    _, key = funded_key
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key=key, max_retries=0)
    body = CASES[case].chat()
    direct_usage(body)  # the prompt into the server's cache
    whole = client.chat.completions.create(model=MODEL, **body).choices[0]
    text, calls = "", {}
    for chunk in client.chat.completions.create(model=MODEL, stream=True, **body):
        delta = chunk.choices[0].delta if chunk.choices else None
        text += (delta.content or "") if delta else ""
        for call in (delta.tool_calls or []) if delta else []:
            name, arguments = calls.get(call.index, ("", ""))
            calls[call.index] = (
                name + (call.function.name or ""),
                arguments + (call.function.arguments or ""),
            )
    whole_calls = [(c.function.name, c.function.arguments) for c in whole.message.tool_calls or []]
    assert (whole.message.content or "") == text and whole_calls == list(calls.values())
    assert text or whole_calls


def test_sampled_answers_the_server_cut_are_billed_its_limit(gateway_url, funded_key, llama_model):
    """At the default temperature an answer need not re-tokenize to the tokens the server generated (an ASCII
    one cut at 20 counted 19 once, 21 once); the server cuts an ASCII one at exactly max_tokens: billed so."""
    _, key = funded_key
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key=key, max_retries=0)
    cut = 0
    for _ in range(8):
        stream = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Write a long story about a dragon and a knight."}],
            max_tokens=20,
            stream=True,
        )
        text, finish = "", None
        for chunk in stream.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        generation = settled_generation(stream.headers["x-request-id"])
        if finish == "length" and text.isascii():
            cut += 1
            assert generation.tokens_completion == 20, text
    assert cut >= 4  # the story runs on: most are cut


# --- Tools, and the choices the server's chat handler takes ---------------------------------------------

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


# --- A client that leaves mid-stream -------------------------------------------------------------------

LONG = Case([("user", "Count from one to five hundred in words, separated by commas.")], max_tokens=600)
TEXT_DELTAS = {  # where each format's stream carries output text
    "chat": lambda event: ((event.get("choices") or [{}])[0].get("delta") or {}).get("content"),
    "responses": lambda event: (
        event.get("delta") if event.get("type") == "response.output_text.delta" else None
    ),
    "messages": lambda event: (event.get("delta") or {}).get("text"),
}


def count_tokens(text: str) -> int:
    """The server's tokenizer, without what it adds to any text (its count of "")."""
    counts = [
        httpx.post(f"{URL}/extras/tokenize/count", json={"input": part}, timeout=30).json()["count"]
        for part in (text, "")
    ]
    return counts[0] - counts[1]


@pytest.mark.parametrize("fmt", list(PATHS))
def test_a_client_that_leaves_mid_stream_pays_the_servers_prompt_count_and_what_it_was_sent(
    gateway_url, funded_key, llama_model, fmt
):
    workspace, key = funded_key
    before = balance(workspace)
    received_text = ""
    with httpx.Client(timeout=120) as client:
        body = {**body_in(fmt, LONG), "model": MODEL, "stream": True}
        with client.stream(
            "POST", gateway_url + PATHS[fmt], json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            assert response.status_code == 200
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    received_text += TEXT_DELTAS[fmt](json.loads(line[6:])) or ""
                if len(received_text) >= 20:
                    break  # leaving: the connection closes with the block
    generation = settled_generation(request_id, timeout=30)
    whole = direct_usage(LONG.chat())

    assert generation.status == "cancelled"
    assert generation.tokens_prompt == whole["prompt_tokens"]  # the templated prompt, not an estimate
    # At least what the client read, at most what the whole answer has: the gateway may have sent a few
    # more pieces than the client read before it noticed the client had gone.
    assert count_tokens(received_text) <= generation.tokens_completion < whole["completion_tokens"]
    assert before - balance(workspace) == generation.cost_micro_usd > 0
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 0


# --- The server's own refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", list(PATHS))
def test_a_prompt_over_the_servers_context_is_context_length_exceeded_in_the_servers_words(
    gateway_url, funded_key, llama_model, fmt, stream
):
    """The catalog says 32k, the server holds 2k: the server's own structured refusal decides the code."""
    workspace, key = funded_key
    before = balance(workspace)
    case = Case([("user", "hello " * 5000)], max_tokens=5)
    answer = ask_gateway(gateway_url, key, fmt, body_in(fmt, case), stream=stream)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length" in error["message"] and "llamacpp" not in error["message"]
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.status, generation.cost_micro_usd) == ("failed", 0)
    assert "HTTP 400" in generation.error_detail
    assert balance(workspace) == before


def test_a_stream_longer_than_its_providers_timeout_runs_to_its_end(gateway_url, funded_key, llama_model):
    """The server makes ~60 tokens a second here: 200 take ~3 s, past a provider timeout of 1 s that bounds
    each silence of the stream, not the stream (docs/catalog.md)."""
    from catalog.models import Provider
    from gateway.catalog_cache import catalog_cache

    Provider.objects.filter(routes__model__slug=MODEL).update(timeout_seconds=1)
    catalog_cache.invalidate()
    _, key = funded_key
    case = Case([("user", "Write a long story about a dragon.")], max_tokens=200)  # it stops at the limit
    answer = ask_gateway(gateway_url, key, "chat", case.chat(), stream=True)
    assert answer.status_code == 200 and '"code":"provider_timeout"' not in answer.text
    generation = settled_generation(answer.headers["x-request-id"])
    assert generation.status == "completed" and generation.latency_ms > 1_000
    assert generation.tokens_completion == direct_usage(case.chat())["completion_tokens"] == 200


def test_a_limit_of_one_request_serves_a_queue_in_turn_and_refuses_past_it(
    gateway_url, funded_key, llama_model
):
    """max_concurrency 1 (a server with one slot, as a local one often is): three streams at once queue and
    are each billed the server's count; with no queue, the second of two at once gets provider_overloaded."""
    from concurrent.futures import ThreadPoolExecutor

    from catalog.models import Provider
    from gateway import provider_slots
    from gateway.catalog_cache import catalog_cache

    providers = Provider.objects.filter(routes__model__slug=MODEL)
    providers.update(max_concurrency=1, max_queued=3, queue_timeout_seconds=60)
    catalog_cache.invalidate()
    _, key = funded_key
    case = Case([("user", "Count from one to twenty.")], max_tokens=30)

    def ask(_: int) -> httpx.Response:
        return ask_gateway(gateway_url, key, "chat", case.chat(), stream=True)

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(ask, range(3)))
    expected = direct_usage(case.chat())["completion_tokens"]
    for answer in answers:
        assert answer.status_code == 200 and answer.text.rstrip().endswith("data: [DONE]")
        generation = settled_generation(answer.headers["x-request-id"])
        assert (generation.status, generation.tokens_completion) == ("completed", expected)
    slots = provider_slots._by_slug[providers.get().slug]
    assert (slots.under_way, len(slots.waiting)) == (0, 0)
    no_leases_left(providers.get().slug)  # with the Redis meter (the default here) the slot was a lease

    providers.update(max_queued=0)
    catalog_cache.invalidate()
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(answer.status_code for answer in pool.map(ask, range(2)))
    assert statuses == [200, 529]

"""Against a real llama-cpp-python server (tests/gateway/llamacpp_server.py): billing.

Each test asks the gateway in one of its three formats, then asks the server directly, not streamed, with
the same deterministic chat, and compares the tokens billed with the server's own count, and the balance
drop with the generation's cost. The server streams no usage, and merges the tokens of a character that
spans several into one chunk, so only an exact count passes.
"""

import json

import httpx
import openai
import pytest

from billing.models import CreditAccount
from tests.gateway.conftest import no_leases_left, settled_generation
from tests.gateway.llamacpp_server import (
    CALL,
    INGRESS_FORMATS,
    MODEL,
    NEEDS_THE_SERVER,
    PATHS,
    RESULT,
    URL,
    Case,
    ask_gateway,
    balance,
    body_in,
    direct_usage,
)

pytestmark = NEEDS_THE_SERVER

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

"""A client that disconnects mid-stream stops the generation and pays only for what was produced."""

import json
import socket
import time
from collections.abc import Callable

from billing.models import CreditAccount
from gateway.models import Generation
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation

PROMPT = " ".join(f"word{i}" for i in range(12))  # the sandbox echoes it: about 20 tokens at 60/s


def stream_then_leave(gateway_url: str, key: str, body: dict, until: Callable[[bytes], bool]) -> str:
    """Stream a chat completion, close the socket once what it received is `until`; the request's id."""
    host, port = gateway_url.removeprefix("http://").split(":")
    payload = json.dumps({**body, "stream": True}).encode()
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while not until(received):
            received += sock.recv(65536)
        return received.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
    # The socket is closed here, mid-stream.


def test_a_disconnect_mid_stream_is_billed_for_the_tokens_produced(gateway_url, funded_key):
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    body = {"model": "hyperinfer/sandbox-pro", "messages": [{"role": "user", "content": PROMPT}]}
    # The role frame and three tokens.
    request_id = stream_then_leave(gateway_url, key, body, until=lambda got: got.count(b"data: ") >= 4)

    generation = settled_generation(request_id)
    assert generation.status == "cancelled"
    assert 3 <= generation.tokens_completion < 15
    expected = -(-(generation.tokens_prompt * 60 + generation.tokens_completion * 250) // 100)
    assert generation.cost_micro_usd == expected
    account = CreditAccount.objects.get(workspace=workspace)
    assert before - account.balance_micro_usd == expected
    assert account.reserved_micro_usd == 0


def test_a_llamacpp_stream_left_early_bills_the_servers_counts_of_prompt_and_delivered_output(
    gateway_url, funded_key, monkeypatch
):
    """llama.cpp streams no usage: the bill of a stream left early counts the templated prompt with the
    one-token probe and what was delivered with the server's tokenizer, not the gateway's estimates."""
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    # The fake pauses after the role frame and two pieces ("alpha", " beta"); the client leaves meanwhile.
    scenario = Scenario(text="alpha beta gamma delta epsilon", prompt_tokens=57, failure="pause", delay=10)
    with openai_fake("llamacpp", scenario) as fake:
        serve_model_from(
            "test/llamacpp", [("llamacpp", fake.base_url)], prompt_price="1", completion_price="2"
        )
        body = {"model": "test/llamacpp", "messages": [{"role": "user", "content": "Name five letters"}]}
        request_id = stream_then_leave(gateway_url, key, body, until=lambda got: b" beta" in got)
        generation = settled_generation(request_id)
        streamed, probe = fake.chat_requests
        counted = [r.body["input"] for r in fake.requests if r.path == "/extras/tokenize/count"]

    assert generation.status == "cancelled"
    assert probe.body["messages"] == streamed.body["messages"] and probe.body["max_tokens"] == 1
    # The fake tokenizer counts a token a word plus a BOS, which the adapter takes off (its count of "").
    assert counted == ["alpha beta", ""]
    assert (generation.tokens_prompt, generation.tokens_completion) == (57, 2)
    assert generation.cost_micro_usd == 57 * 1 + 2 * 2
    account = CreditAccount.objects.get(workspace=workspace)
    assert before - account.balance_micro_usd == generation.cost_micro_usd
    assert account.reserved_micro_usd == 0


def test_a_client_that_leaves_before_a_whole_answer_pays_for_the_whole_answer_the_upstream_made(
    gateway_url, funded_key, sql_meter
):
    """Not streamed: the upstream is asked for the whole answer and makes (and bills) all of it, so the
    gateway reads it to its end and bills it whole, as cancelled, though the client left (ADR 0019)."""
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    host, port = gateway_url.removeprefix("http://").split(":")
    # The fake answers after 1.5 s; the client leaves after 0.3 s.
    scenario = Scenario(text="Hello there.", failure="pause", delay=1.5, prompt_tokens=9, completion_tokens=4)
    with openai_fake("cerebras", scenario) as fake:
        serve_model_from(
            "test/slow-whole", [("cerebras", fake.base_url)], prompt_price="1", completion_price="2"
        )
        payload = json.dumps({"model": "test/slow-whole", "messages": [{"role": "user", "content": "hi"}]})
        request = (
            f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n{payload}"
        ).encode()
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            time.sleep(0.3)
        generation = None
        while generation is None and time.monotonic() - started < 6:
            generation = Generation.objects.filter(workspace=workspace).first()
            time.sleep(0.05)
        assert [r.body["stream"] for r in fake.chat_requests] == [False]
    assert generation is not None, "the request was never settled"
    assert time.monotonic() - started >= 1.5  # not before the answer was whole
    assert generation.status == "cancelled"
    assert (generation.tokens_prompt, generation.tokens_completion) == (9, 4)
    assert generation.cost_micro_usd == 9 * 1 + 4 * 2
    account = CreditAccount.objects.get(workspace=workspace)
    assert before - account.balance_micro_usd == generation.cost_micro_usd
    assert account.reserved_micro_usd == 0

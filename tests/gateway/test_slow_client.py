"""Clients that stall, with production's server protocol (core/http_server.py). One that stops taking a
streamed answer is dropped once its socket has taken nothing for CLIENT_STALL_SECONDS, and its request
billed for everything its upstream generated — what the gateway read but never got to send included. One
that stops sending its request halfway (its head, its body) is dropped as long after its last part; one whose
head grows past MAX_HEAD_BYTES is refused."""

import contextlib
import json
import socket
import time

import pytest

from catalog.models import Model
from core.http_server import MAX_HEAD_BYTES, HttpToolsProtocol
from gateway.auth import key_cache
from gateway.catalog_cache import catalog_cache
from gateway.models import Generation
from tests.fakes.openai_dialects import openai_fake
from tests.fakes.openai_scenario import Scenario
from tests.gateway.conftest import ServerThread, serve_model_from, settled_generation

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

COMPLETION_TOKENS = 30_000  # as the upstream counts its answer


@pytest.fixture
def production_server(shipped_catalog, settings, monkeypatch):
    settings.GATEWAY_METER = "redis"
    settings.EMBEDDED_BEAT = False
    settings.CLIENT_STALL_SECONDS = 1
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    catalog_cache.invalidate()
    key_cache._entries.clear()
    with ServerThread(http=HttpToolsProtocol) as url:
        yield int(url.rsplit(":", 1)[1])
    catalog_cache.invalidate()


def open_stream(port: int, key: str) -> tuple[socket.socket, str]:
    """A streamed request on a socket whose receive buffer is small; the response's head read. Returns the
    socket and the request id."""
    body = json.dumps(
        {
            "model": "test/long",
            "stream": True,
            "max_tokens": 40_000,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 200"), head
    request_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    return sock, request_id


def read_to_the_end(sock: socket.socket, pause: float = 0.0) -> bytes:
    """What the socket gives until the response's last chunk, or until the server closes or drops it."""
    got = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while not got.endswith(b"\r\n0\r\n\r\n") and (data := sock.recv(65536)):
            got += data
            if pause:
                time.sleep(pause)
    return bytes(got)


def test_a_client_that_takes_nothing_is_dropped_and_billed_for_all_its_upstream_generated(
    production_server, funded_key
):
    workspace, key = funded_key
    # Megabytes (past every buffer between the gateway and the client) in pieces large enough that the gateway
    # has read all of them well before it drops the client, on a slow machine too: 30,000 pieces of 100
    # took it past the second on one (it billed what it had read by then, 28,769 of the 30,000).
    scenario = Scenario(text="abcdefghij" * 300_000, piece=2_000, completion_tokens=COMPLETION_TOKENS)
    with openai_fake("cerebras", scenario) as fake:
        serve_model_from("test/long", [("openai_compatible", fake.url + "/v1")])
        sock, request_id = open_stream(production_server, key)
        with sock:
            stalled = time.monotonic()
            time.sleep(3)  # taking nothing
            rest = read_to_the_end(sock)
            took = time.monotonic() - stalled
    assert not rest.endswith(b"\r\n0\r\n\r\n") and b"data: [DONE]" not in rest  # cut off
    assert took < 10  # dropped after ~1 s; read to its end, ~10 MB through a 4 KB window takes longer
    generation = settled_generation(request_id, timeout=10)
    model = Model.objects.get(slug="test/long")
    assert generation.status == "cancelled"
    # The gateway read the whole answer while the client took nothing: its usage, as the upstream counted
    # it, is the bill (before: the deltas sent, ~a third).
    assert generation.tokens_completion == COMPLETION_TOKENS
    assert generation.cost_micro_usd == generation.tokens_prompt * model.prompt_price + (
        COMPLETION_TOKENS * model.completion_price
    )
    assert Generation.objects.filter(workspace=workspace).count() == 1


def test_a_client_that_reads_slowly_but_steadily_is_not_dropped(production_server, funded_key):
    _, key = funded_key
    scenario = Scenario(text="abcdefghij" * 30_000, piece=100, completion_tokens=3_000)
    with openai_fake("cerebras", scenario) as fake:
        serve_model_from("test/long", [("openai_compatible", fake.url + "/v1")])
        sock, request_id = open_stream(production_server, key)
        with sock:
            started = time.monotonic()
            answer = read_to_the_end(sock, pause=0.02)  # its socket full most of the time
            took = time.monotonic() - started
    assert answer.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")  # answered to its end
    assert took > 1  # slower than the stall limit in all, and never stalled that long
    generation = settled_generation(request_id, timeout=10)
    assert generation.status == "completed" and generation.tokens_completion == 3_000


def dropped_within(port: int, parts: list[bytes], seconds: float) -> tuple[bytes, float]:
    """Send `parts` 0.6 s apart (each gap inside the 1 s limit) and then nothing: what the server answers
    until it closes the connection, and how long after the last part it closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        for n, part in enumerate(parts):
            if n:
                time.sleep(0.6)
            sock.sendall(part)
        sent = time.monotonic()
        got = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                got += data
        return bytes(got), time.monotonic() - sent


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([b"POST /api/v1/chat/completions HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"], id="its head"),
        pytest.param(
            [
                b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n",
                b"{}",
            ],
            id="its body",
        ),
    ],
)
def test_a_client_that_stops_sending_its_request_halfway_is_dropped(production_server, parts):
    answer, took = dropped_within(production_server, parts, seconds=10)
    assert answer == b""  # dropped: no answer, the connection closed
    assert 0.9 < took < 3


def test_a_request_sent_in_parts_each_inside_the_limit_is_answered(production_server):
    parts = [b"GET /hea", b"lthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"Connection: close\r\n\r\n"]
    answer, _ = dropped_within(production_server, parts, seconds=10)  # 1.2 s in all
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"ok"}')


def test_a_head_that_grows_past_the_limit_is_refused_as_too_large_and_the_connection_closed(
    production_server,
):
    """A header that never ends (a flood, not a stall): refused once the reads of the head pass
    MAX_HEAD_BYTES, with the taxonomy's payload_too_large in the spec's envelope; the server kept every byte
    of it before."""
    with socket.create_connection(("127.0.0.1", production_server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: ")
        for _ in range(2):  # past the limit with the second, and no end to the header
            time.sleep(0.05)
            sock.sendall(b"a" * (MAX_HEAD_BYTES // 2))
        answer = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                answer += data
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    error = json.loads(body)["error"]
    assert (error["code"], error["type"]) == ("payload_too_large", "invalid_request_error")


def test_a_head_under_the_limit_that_comes_in_parts_is_answered(production_server):
    parts = [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ",
        b"a" * (MAX_HEAD_BYTES // 2),
        b"\r\n\r\n",
    ]
    with socket.create_connection(("127.0.0.1", production_server), timeout=10) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_connection_that_sends_nothing_at_all_is_dropped(production_server):
    """uvicorn times the idle time between requests, not before the first: such a connection was held for
    good, a file descriptor each."""
    answer, took = dropped_within(production_server, [], seconds=10)
    assert answer == b"" and 0.9 < took < 3

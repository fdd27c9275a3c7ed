"""A client that disconnects mid-stream stops the generation and pays only for what was produced."""

import json
import socket

from billing.models import CreditAccount
from tests.gateway.conftest import settled_generation

PROMPT = " ".join(f"word{i}" for i in range(12))  # the sandbox echoes it: about 20 tokens at 60/s


def test_a_disconnect_mid_stream_is_billed_for_the_tokens_produced(gateway_url, funded_key):
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    host, port = gateway_url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": "hyperinfer/sandbox-pro", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    ).encode()
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b"data: ") < 4:  # the role frame and three tokens
            received += sock.recv(65536)
        request_id = received.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
    # The socket is closed here, mid-stream.

    generation = settled_generation(request_id)
    assert generation.status == "cancelled"
    assert 3 <= generation.tokens_completion < 15
    expected = -(-(generation.tokens_prompt * 60 + generation.tokens_completion * 250) // 100)
    assert generation.cost_micro_usd == expected
    account = CreditAccount.objects.get(workspace=workspace)
    assert before - account.balance_micro_usd == expected
    assert account.reserved_micro_usd == 0

"""Bodies on Django's paths (core/body_limit.py): Django reads a whole body to a temporary file before it
looks at the request, so one past DATA_UPLOAD_MAX_MEMORY_SIZE is refused with payload_too_large before it is
read — at once when its Content-Length says so, as soon as it passes the limit when it comes chunked."""

import contextlib
import json
import socket

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)


def answer_of(sock: socket.socket) -> tuple[int, dict]:
    got = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            got += data
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_a_body_whose_length_passes_the_limit_is_refused_before_it_is_sent(gateway_url):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    with socket.create_connection(("127.0.0.1", port_of(gateway_url)), timeout=10) as sock:
        sock.sendall(
            b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % (limit + 1)
        )  # and none of the body
        status, body = answer_of(sock)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_a_chunked_body_is_refused_once_it_passes_the_limit(gateway_url):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    chunk = b"a" * 262_144
    with socket.create_connection(("127.0.0.1", port_of(gateway_url)), timeout=10) as sock:
        sock.sendall(b"POST /no-such-page/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may stop reading once it has answered
            for _ in range(limit // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = answer_of(sock)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_a_body_within_the_limit_reaches_django(gateway_url):
    with socket.create_connection(("127.0.0.1", port_of(gateway_url)), timeout=10) as sock:
        sock.sendall(b"POST /no-such-page/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello")
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 404")

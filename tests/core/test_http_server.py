"""core/http_server.py: a response's head leaves in the same write() as its body's first bytes; a head whose
body is not ready leaves at the end of the event loop's turn; every byte keeps its order. On real sockets,
and end to end through a real uvicorn server on loopback."""

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn

from core.http_server import HttpToolsProtocol, _HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n"


class Counting:
    """A real transport whose writes are recorded (each one a write() system call)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def connected_pair() -> tuple[Counting, asyncio.StreamReader]:
    """A client transport (counted) and the reader of the server side of its connection."""
    accepted: asyncio.Future[asyncio.StreamReader] = asyncio.get_running_loop().create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(reader)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
    return Counting(transport), await accepted


def test_a_head_and_the_body_after_it_leave_in_one_write():
    async def scenario():
        counted, peer = await connected_pair()
        held = _HeadWithBody(counted, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(HEAD)
        held.write(b"body")
        assert counted.writes == [HEAD + b"body"]
        assert await peer.readexactly(len(HEAD) + 4) == HEAD + b"body"
        await asyncio.sleep(0.01)  # the held head's end-of-turn write was called off
        assert counted.writes == [HEAD + b"body"]

    asyncio.run(scenario())


def test_a_head_whose_body_is_not_ready_leaves_at_the_end_of_the_loops_turn():
    async def scenario():
        counted, peer = await connected_pair()
        held = _HeadWithBody(counted, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(HEAD)
        assert counted.writes == []
        await asyncio.sleep(0)
        assert counted.writes == [HEAD]
        assert await peer.readexactly(len(HEAD)) == HEAD
        held.write(b"body")
        assert counted.writes == [HEAD, b"body"]

    asyncio.run(scenario())


def test_other_bytes_leave_at_once_and_closing_sends_a_held_head_first():
    async def scenario():
        counted, peer = await connected_pair()
        held = _HeadWithBody(counted, asyncio.get_running_loop())  # type: ignore[arg-type]
        held.write(b"5\r\nhello\r\n")  # a chunk of a body: not held
        assert counted.writes == [b"5\r\nhello\r\n"]
        held.write(HEAD)
        held.close()
        assert counted.writes == [b"5\r\nhello\r\n", HEAD]
        assert await peer.read() == b"5\r\nhello\r\n" + HEAD  # then the end of the stream

    asyncio.run(scenario())


# --- through uvicorn ------------------------------------------------------------------------------------

released = threading.Event()  # lets the streaming app write its body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        while not released.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"late", "more_body": False})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Spied(HttpToolsProtocol):
    """The protocol under test, over a transport whose writes are counted."""

    transports: list[Counting] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        counted = Counting(transport)
        Spied.transports.append(counted)
        super().connection_made(counted)  # type: ignore[arg-type]


@contextlib.contextmanager
def uvicorn_serving():
    """A real uvicorn server with the protocol, in a thread of its own; yields its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=Spied, loop="asyncio", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def read_head(client: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = client.recv(4096)
        assert piece, "the server closed the connection"
        data += piece
    return data


def test_uvicorn_sends_a_whole_answer_in_one_write_and_keeps_the_connection():
    Spied.transports.clear()
    with uvicorn_serving() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        for _ in range(2):
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_head(client)
            head, _, body = answer.partition(b"\r\n\r\n")
            while len(body) < len(b'{"ok":true}'):
                body += client.recv(4096)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
            assert body == b'{"ok":true}'
    (counted,) = Spied.transports
    assert len(counted.writes) == 2  # one a response, head and body together
    assert all(
        write.startswith(b"HTTP/1.1 200 OK") and write.endswith(b'{"ok":true}') for write in counted.writes
    )


def test_uvicorn_sends_a_streams_head_before_its_body_is_ready():
    released.clear()
    with uvicorn_serving() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_head(client)  # arrives while the app still holds its body back
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
        released.set()
        rest = head.partition(b"\r\n\r\n")[2]
        while not rest.endswith(b"0\r\n\r\n"):
            rest += client.recv(4096)
        assert rest == b"4\r\nlate\r\n0\r\n\r\n"

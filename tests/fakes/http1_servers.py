"""A raw HTTP/1.1 server on loopback for the upstream client's tests (tests/gateway/test_http1*.py), and
their helpers.

The test writes the exact bytes of each answer; the server reads the requests off the wire as they came,
keeps one Peer per accepted connection (so the test counts connections and requests on each), and notes
when the client closed a connection. It runs in the test's own event loop, next to the client.
"""

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.upstreams.http1 import UpstreamClient


@dataclass
class Request:
    line: str  # "POST /path?query HTTP/1.1"
    headers: list[tuple[str, str]]  # as sent: names in their case, in their order
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


class Peer:
    """One accepted connection: the requests read from it, and whether the client closed it."""

    def __init__(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.number = number  # 1 for the server's first connection
        self.reader = reader
        self.writer = writer
        self.requests: list[Request] = []
        self.closed_by_client = asyncio.Event()
        self.closed_by_server = False

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        """The server hangs up (after reading what the client sent: a FIN, not a reset)."""
        self.closed_by_server = True
        self.writer.close()

    async def next_request(self) -> Request | None:
        """The next request, or None once the client closed the connection between two requests."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            assert not exc.partial, f"the connection closed inside a request head: {exc.partial!r}"
            self.closed_by_client.set()
            return None
        except ConnectionError:
            self.closed_by_client.set()
            return None
        line, *fields = head[:-4].decode("latin-1").split("\r\n")
        headers = [(name, value.strip()) for name, _, value in (field.partition(":") for field in fields)]
        request = Request(line, headers, b"")
        request.body = await self.reader.readexactly(int(request.header("Content-Length") or 0))
        self.requests.append(request)
        return request


Answer = Callable[[Peer, Request], Awaitable[None]]


class Server:
    """`async with Server(answer) as server:` serves on 127.0.0.1 (TLS with `tls`); `answer(peer, request)`
    writes the answer to each request. An exception in `answer` fails the test when the server stops."""

    def __init__(self, answer: Answer, *, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers) + 1, reader, writer)
        self.peers.append(peer)
        try:
            while (request := await peer.next_request()) is not None:
                await self.answer(peer, request)
                if peer.closed_by_server:
                    break
                await writer.drain()
        except ConnectionError:
            peer.closed_by_client.set()
        except Exception as exc:
            self.errors.append(exc)
        finally:
            writer.close()

    async def __aenter__(self) -> "Server":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        if self.errors and kind is None:  # a failure of the test itself says more
            raise self.errors[0]


def answer(body: bytes = b"", *headers: str, status: str = "200 OK") -> bytes:
    """A whole answer with a Content-Length."""
    head = "".join(f"{header}\r\n" for header in (f"HTTP/1.1 {status}", *headers))
    return b"%sContent-Length: %d\r\n\r\n%s" % (head.encode(), len(body), body)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --- for the tests: one loop a test, a client, answers and what the server saw ---------------------------

SEEN_WITHIN_S = 1.0  # how long the server may take to notice what the client did


def run(scenario) -> None:
    """One test, one event loop: the servers and the client share it; a hang fails the test in 5 s."""
    asyncio.run(asyncio.wait_for(scenario, 5))


@contextlib.asynccontextmanager
async def upstream(**options):
    client = UpstreamClient(**options)
    try:
        yield client
    finally:
        await client.close()


def always(data: bytes):
    async def send(peer: Peer, request: Request) -> None:
        peer.send(data)

    return send


async def never_answer(peer: Peer, request: Request) -> None:
    pass


async def closed_by_client(peer: Peer) -> None:
    await asyncio.wait_for(peer.closed_by_client.wait(), SEEN_WITHIN_S)


async def body_of_a_post(client: UpstreamClient, server: Server) -> bytes:
    """The answer to one small POST, read to its end (its connection goes back to the pool)."""
    response = await client.post(server.url(), b"{}", {}, timeout=1)
    return await response.read()


def requests_per_connection(server: Server) -> list[int]:
    return [len(peer.requests) for peer in server.peers]

"""The model upstreams' HTTP client: HTTP/1.1 over pooled keep-alive connections, parsed by httptools.

Every answer the gateway serves is one POST to a model provider, so this client's cost is paid on every
request. aiohttp's ClientSession spent 125 to 131 µs of CPU on each small POST here (its request and response
objects, cookie jar, tracing hooks, stream reader, timer context); this one spends 49 to 55 µs, most of it the
write system call (bench/README.md, "The upstream client"). It does only what the adapters need: a POST with a
byte body, the status and headers, the body whole or piece by piece as it arrives, on plain TCP or TLS. The
server tools' web traffic (search, images, web_fetch) stays on aiohttp (gateway/session.py): redirects,
cookies and arbitrary URLs are its job.

A connection (gateway/upstreams/http1_connection.py) serves one request at a time and goes back to the pool
when its answer was read to the end and the server keeps it alive; a response left unfinished closes its
connection, which tells a streaming upstream to stop generating. A kept-alive connection the server had closed
while idle fails before the first byte of the answer: the request is then sent once more on a new connection.

Timeouts: `timeout` bounds the whole exchange (connecting, sending, the head and the body); `read_timeout`,
when given, bounds each silence between two pieces of the body instead (streams that run long). Either
raises TimeoutError and drops the connection. Any other failure (refused, reset, a malformed answer) raises
HttpError.
"""

import asyncio
import ssl
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from core.encoding import read_json
from gateway.upstreams.http1_connection import Connection, HttpError, StaleConnection

__all__ = ["HttpError", "HttpStatusError", "UpstreamClient", "UpstreamResponse"]

USER_AGENT = "HyperInfer"
KEEPALIVE_SECONDS = 60.0  # an idle connection older than this is closed, not reused
_TARGETS_MAX = 1024  # parsed URLs kept (a deployment has a few per provider)


class HttpStatusError(HttpError):
    """raise_for_status(): the upstream answered 4xx or 5xx."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status


class _Target:
    """A URL taken apart once: where to connect, and the request line and Host header to send."""

    __slots__ = ("head", "host", "key", "port", "tls", "url")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.tls, self.host, self.port)
        default_port = parts.port is None or parts.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if default_port else f"{host}:{self.port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self.head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n".encode()


class UpstreamResponse:
    """An upstream's answer: its status and headers at once, its body as it comes. Finish it (read it to
    the end, `async with`, release() or close()) so that its connection is reused or dropped; once
    finished, it lets go of the connection, which may by then carry another request."""

    __slots__ = ("_client", "_connection", "headers", "status", "url")

    def __init__(self, client: "UpstreamClient", connection: Connection, url: str) -> None:
        self._client = client
        self._connection: Connection | None = connection
        self.status = connection.status
        self.headers: Mapping[str, str] = connection.headers
        self.url = url

    def _open(self) -> Connection:
        if self._connection is None:
            raise HttpError("the answer was already finished")
        return self._connection

    async def read(self) -> bytes:
        connection = self._open()
        while not connection.complete:
            if connection.error is not None:
                self.close()
                raise connection.error
            await connection.wait()
        body = b"".join(connection.chunks)
        self.release()
        return body

    async def text(self, errors: str = "strict") -> str:
        return (await self.read()).decode("utf-8", errors=errors)

    async def json(self) -> Any:
        return read_json(await self.read())

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive; the connection goes back to the pool after the last."""
        connection = self._open()
        pieces = connection.chunks
        while True:
            if pieces:
                yield pieces.popleft()
            elif connection.complete:
                self.release()
                return
            elif connection.error is not None:
                self.close()
                raise connection.error
            else:
                await connection.wait()

    def raise_for_status(self) -> None:
        if self.status >= 400:
            self.close()
            raise HttpStatusError(self.status, self.url)

    def release(self) -> None:
        """Back to the pool if the answer was read to its end and the server keeps the connection; else
        dropped (which stops an upstream still streaming)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._give_back(connection)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.done()
            connection.drop()

    async def __aenter__(self) -> "UpstreamResponse":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


class _Request:
    """What post() returns: awaited, the response; used with `async with`, the response finished after."""

    __slots__ = ("_exchange", "_response")

    def __init__(self, exchange: Coroutine[Any, Any, UpstreamResponse]) -> None:
        self._exchange = exchange
        self._response: UpstreamResponse | None = None

    def __await__(self) -> Generator[Any, None, UpstreamResponse]:
        return self._exchange.__await__()

    async def __aenter__(self) -> UpstreamResponse:
        self._response = await self._exchange
        return self._response

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._response is not None:
            self._response.release()


class UpstreamClient:
    """One per event loop (gateway/session.py): a pool of kept-alive connections per host, port and scheme."""

    def __init__(self, *, keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive_seconds = keepalive_seconds
        self.closed = False
        self._idle: dict[tuple[bool, str, int], list[Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweep: asyncio.TimerHandle | None = None

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float | None,
        read_timeout: float | None = None,
    ) -> _Request:
        """POST `body`; the answer once its head arrived. `headers` must not hold Host or Content-Length."""
        return _Request(self._exchange(url, body, headers, timeout, read_timeout))

    async def _exchange(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float | None,
        read_timeout: float | None,
    ) -> UpstreamResponse:
        if self.closed:
            raise HttpError("the upstream client is closed")
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise HttpError("a header name or value holds a line break")
        data = b"%s%sContent-Length: %d\r\n\r\n%s" % (
            target.head,
            lines.encode(),
            len(body),
            body,
        )
        deadline = None if timeout is None else self.loop.time() + timeout
        while True:
            connection = self._take_idle(target.key) or await self._connect(target, deadline)
            connection.send(data, deadline, read_timeout)
            try:
                while not connection.head_done:
                    if connection.error is not None:
                        raise connection.error
                    await connection.wait()
            except StaleConnection:
                connection.done()
                continue  # the server had closed it while idle; nothing was answered: send it again
            except BaseException:
                connection.done()
                connection.drop()
                raise
            connection.start_read_timer()
            return UpstreamResponse(self, connection, url)

    def _target(self, url: str) -> _Target:
        if len(self._targets) >= _TARGETS_MAX:
            self._targets.clear()
        target = self._targets[url] = _Target(url)
        return target

    def _take_idle(self, key: tuple[bool, str, int]) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_usable = self.loop.time() - self.keepalive_seconds
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > oldest_usable:
                return connection
            connection.drop()
        return None

    async def _connect(self, target: _Target, deadline: float | None) -> Connection:
        if target.tls and self._tls is None:
            self._tls = ssl.create_default_context()
        async with asyncio.timeout_at(deadline):  # its TimeoutError is an OSError: raised outside the `try`
            try:
                _, connection = await self.loop.create_connection(
                    lambda: Connection(self.loop, target.key),
                    target.host,
                    target.port,
                    ssl=self._tls if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                )
            except OSError as exc:  # refused, unreachable, no such host, a TLS failure
                raise HttpError(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        return connection

    def _give_back(self, connection: Connection) -> None:
        connection.done()
        if connection.closed or self.closed or not (connection.complete and connection.keep_alive):
            connection.drop()
            return
        connection.reused = True
        connection.idle_since = self.loop.time()
        self._idle.setdefault(connection.key, []).append(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.keepalive_seconds, self._close_expired)

    def _close_expired(self) -> None:
        """Close the connections idle longer than keepalive_seconds; look again while any stay idle."""
        self._sweep = None
        oldest_usable = self.loop.time() - self.keepalive_seconds
        for idle in self._idle.values():
            expired = [c for c in idle if c.closed or c.idle_since <= oldest_usable]
            for connection in expired:
                idle.remove(connection)
                connection.drop()
        if any(self._idle.values()):
            self._sweep = self.loop.call_later(self.keepalive_seconds, self._close_expired)

    async def close(self) -> None:
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for connection in idle:
                connection.drop()
        self._idle.clear()

"""One kept-alive HTTP/1.1 connection to a model upstream (gateway/upstreams/http1.py pools them): an asyncio
protocol whose httptools callbacks fill in the answer, its timers, and the ways it fails.

It carries one exchange at a time. Its waiter (one future) is woken on every piece of news: the head, a
piece of the body, the end, a failure. `timeout`'s deadline is one timer for the whole exchange;
`read_timeout` replaces it after the head with one timer that re-arms itself lazily (a read only notes its
time), so a stream's reads cost no timer each.
"""

import asyncio
import collections
import zlib
from typing import Any

import httptools

# The most an answer's body may hold, decoded: far past any model's answer or a batch of embeddings (2,048
# vectors of 3,072 floats are ~130 MB of JSON). Past it the exchange fails as a malformed answer does, where
# a runaway body or a compression bomb would fill the worker's memory.
MAX_ANSWER_BYTES = 256 * 1024 * 1024


class HttpError(Exception):
    """The exchange failed: no connection, a reset, or an answer that is not HTTP/1.1."""


class StaleConnection(HttpError):
    """A reused connection closed before any byte of the answer: the server had dropped it while idle."""


class Connection(asyncio.Protocol):
    """One kept-alive connection: httptools' callbacks fill in the answer; one waiter is woken on news."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[bool, str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.busy = False
        self._begin_answer()

    def _begin_answer(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: collections.deque[bytes] = collections.deque()
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False  # the body ends when the server closes (no length, not chunked)
        self.decoder: Any = None
        self.body_bytes = 0  # decoded, so far
        self.received = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.read_timeout: float | None = None
        self.last_read = 0.0

    # --- one exchange --------------------------------------------------------------------
    def send(self, data: bytes, deadline: float | None, read_timeout: float | None) -> None:
        self._begin_answer()
        self.busy = True
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._time_up)
        self.read_timeout = read_timeout
        assert self.transport is not None
        self.transport.write(data)

    def start_read_timer(self) -> None:
        """After the head: the whole-exchange deadline gives way to the gap allowed between reads."""
        if self.read_timeout is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.last_read = self.loop.time()
        self.timer = self.loop.call_at(self.last_read + self.read_timeout, self._check_read_gap)

    def _check_read_gap(self) -> None:
        assert self.read_timeout is not None
        due = self.last_read + self.read_timeout
        if self.loop.time() >= due:
            self._time_up()
        else:  # data came since: look again when the new gap would be up
            self.timer = self.loop.call_at(due, self._check_read_gap)

    def _time_up(self) -> None:
        self.timer = None
        if self.complete:
            return
        self._fail(TimeoutError())
        self.drop()

    def wait(self) -> "asyncio.Future[None]":
        self.waiter = self.loop.create_future()
        return self.waiter

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    def done(self) -> None:
        """The exchange is over (answer read, or abandoned): stop its timer."""
        self.busy = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # a server speaking out of turn: the connection cannot be trusted again
            self.drop()
            return
        self.received = True
        if self.read_timeout is not None:
            self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback raised (an encoding we cannot read) comes back as this
            self._fail(cause if isinstance(cause, HttpError) else HttpError(f"malformed HTTP answer: {exc}"))
            self.drop()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.busy or self.complete:
            return
        if self.until_close and self.head_done and exc is None:  # a reset is no end: the body may be cut
            self.complete = True
            self._wake()
        elif not self.received and self.reused:
            self._fail(StaleConnection("the kept-alive connection was closed"))
        else:
            self._fail(HttpError(f"the connection closed before the answer ended ({exc or 'EOF'})"))

    # --- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # more after the answer, unasked: the connection cannot be trusted again
            raise HttpError("the upstream sent more than its answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = {}
            return
        self.status = status
        headers = self.headers
        if (
            status not in (204, 304)
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        ):
            self.until_close = True
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "deflate", "x-gzip"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by the header
        elif encoding != "identity":
            raise HttpError(f"the answer's content-encoding is {encoding!r}, which this client cannot read")
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:  # decoded no further than one byte past the limit, whatever the compressed bytes expand to
                body = self.decoder.decompress(body, MAX_ANSWER_BYTES - self.body_bytes + 1)
            except zlib.error as exc:
                raise HttpError(f"the answer's compressed body is corrupt: {exc}") from exc
        if body:
            self._count(body)
            self.chunks.append(body)
            self._wake()

    def _count(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_ANSWER_BYTES:
            raise HttpError(f"the answer is longer than {MAX_ANSWER_BYTES} bytes")

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim answer
            return
        if self.decoder is not None and (tail := self.decoder.flush()):
            self._count(tail)
            self.chunks.append(tail)
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive() and not self.until_close
        self._wake()

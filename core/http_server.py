"""uvicorn's httptools protocol, sending a response's head in the same write() as its first body bytes.

uvicorn writes a response's status line and headers the moment the app sends `http.response.start`, and
its body with each `http.response.body`: two write() system calls for a whole JSON answer, where one would
do. Here the head is held back until the body's first bytes are written, or until the end of the event loop's
turn when no body comes in it (a stream whose first event is not ready yet): its bytes leave in the same
order, and never later than the loop's next turn. One system call less a response; the bench could not
tell the difference from its noise (bench/README.md, "One write a response"; ADR 0021).

A client that stops reading (its socket full, the connection still open) is dropped once the response's
bytes have waited CLIENT_STALL_SECONDS to be taken: until then the request waits on it, holding what the
upstream sent and the workspace's reservation. Dropped, it is a client that left: the request is cancelled
and billed for what its upstream generated (as nginx's `send_timeout`, 60 s by default). So is a client that
stops sending its request halfway (its head or its body; nginx's `client_header_timeout` and
`client_body_timeout`), or a new connection that sends none: each such connection was held for ever. A
request that arrives whole in one read, as nearly all do, starts no timer (ADR 0026).

A request's head (its request line and headers) is refused past MAX_HEAD_BYTES with `payload_too_large`:
httptools sets no limit, and uvicorn kept every byte of a header that never ended (one connection sending
200 MB of it took the worker from 137 to 345 MB). Counted only for a head that does not arrive in one read.

Run the server with it: `uvicorn config.asgi:application --http core.http_server:HttpToolsProtocol …`.
"""

import asyncio
import logging
from typing import Any

from django.conf import settings
from uvicorn.protocols.http import httptools_impl

from core.envelopes import refused_before_routing
from core.errors import HTTP_STATUS, ErrorCode

logger = logging.getLogger(__name__)

_HEAD = b"HTTP/1.1 "  # how every response head uvicorn writes begins (its STATUS_LINE table)


class _HeadWithBody:
    """The connection's transport, holding a response head back for the write that follows it."""

    __slots__ = ("_flush", "_head", "_loop", "is_closing", "pause_reading", "resume_reading", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        # What uvicorn asks of a connection every request, bound here: found through __getattr__, each call
        # would first make and drop an AttributeError (with its formatted message).
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self._loop = loop
        self._head: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:  # the head waiting for these bytes: one write for both
            self._head = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self.transport.write(head + data)
        elif data.startswith(_HEAD):
            self._head = data
            self._flush = self._loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Write a head still held (no body came in its turn of the loop, or the connection closes)."""
        self._flush = None
        head, self._head = self._head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self.transport, name)


MAX_HEAD_BYTES = 64 * 1024  # nginx reads at most 32 KB of headers by default, Node 16 KB, Go 1 MB


def _head_too_large() -> bytes:
    """The whole response: the spec's OpenAI error envelope (no path is known yet to choose another)."""
    message = f"The request's line and headers are larger than {MAX_HEAD_BYTES} bytes."
    request_id, body = refused_before_routing(ErrorCode.PAYLOAD_TOO_LARGE, message)
    status = HTTP_STATUS[ErrorCode.PAYLOAD_TOO_LARGE]
    return (
        b"HTTP/1.1 %d Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"x-request-id: %s\r\nconnection: close\r\n\r\n%s" % (status, len(body), request_id.encode(), body)
    )


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    _stalled: asyncio.TimerHandle | None = None  # set while the transport's buffer is full
    _receiving = False  # a request has begun and is not whole yet
    _first_request_due = False  # connected, and no request has begun yet
    _in_head = False  # a request has begun and its headers are not all in yet
    _head_bytes = 0  # what the reads that left a head unfinished carried
    _request_stalled: asyncio.TimerHandle | None = None  # set while a request comes in parts
    _request_progress = 0.0  # the loop's time its last part came

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadWithBody(transport, self.loop))  # type: ignore[arg-type]
        # Its first request is due within CLIENT_STALL_SECONDS too (uvicorn times only the idle time
        # between requests): a connection that sent nothing was held for good.
        self._first_request_due = True
        self._request_progress = self.loop.time()
        self._request_stalled = self.loop.call_later(
            settings.CLIENT_STALL_SECONDS, self._check_request_stalled
        )

    def pause_writing(self) -> None:
        """The transport's buffer is past its high-water mark: the client is not taking the bytes."""
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(settings.CLIENT_STALL_SECONDS, self._drop_stalled_client)

    def resume_writing(self) -> None:
        self._stop_stall_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_stall_timer()
        if self._request_stalled is not None:
            self._request_stalled.cancel()
            self._request_stalled = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._receiving = self._in_head = True
        self._first_request_due = False
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._receiving:  # a part of a request: the next must come within CLIENT_STALL_SECONDS
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse_head()
                    return
            self._request_progress = self.loop.time()
            if self._request_stalled is None:
                self._request_stalled = self.loop.call_later(
                    settings.CLIENT_STALL_SECONDS, self._check_request_stalled
                )
        elif self._request_stalled is not None and not self._first_request_due:
            self._request_stalled.cancel()
            self._request_stalled = None

    def _check_request_stalled(self) -> None:
        self._request_stalled = None
        if not (self._receiving or self._first_request_due) or self.transport.is_closing():
            return
        limit, now = settings.CLIENT_STALL_SECONDS, self.loop.time()
        if self.flow.read_paused:  # the app is not taking the body: not the client's stall
            self._request_progress = now
        waited = now - self._request_progress
        if waited < limit:  # it came on meanwhile
            self._request_stalled = self.loop.call_later(limit - waited, self._check_request_stalled)
            return
        logger.info("dropped a client that sent nothing of a request for %g s", limit)
        self.transport.abort()

    def _refuse_head(self) -> None:
        self._receiving = self._in_head = False
        self.transport.write(_head_too_large())
        self.transport.close()

    def _stop_stall_timer(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _drop_stalled_client(self) -> None:
        self._stalled = None
        logger.info("dropped a client that took nothing for %g s", settings.CLIENT_STALL_SECONDS)
        # Not close(): that waits for the buffer to be taken, which this client does not do.
        self.transport.abort()

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket protocol takes the connection over: it gets the transport itself."""
        wrapped = self.transport
        if isinstance(wrapped, _HeadWithBody):
            wrapped.flush()
            self.transport = wrapped.transport
        super().handle_websocket_upgrade()

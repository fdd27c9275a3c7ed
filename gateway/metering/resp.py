"""One pipelined Redis connection per event loop for the hot path's scripts (RESERVE, SETTLE).

redis-py spends ~90 µs of CPU on each pipeline it sends here (a pipeline object, a pooled connection taken
and given back, its command stack packed, a task's worth of awaits), against ~15 µs for each command in
it (bench/README.md, "One connection for the scripts"). Every request admits and settles, so that fixed
cost was paid twice a request. This connection has none of it: a call packs its command (RESP), queues
it with a future, and the commands of one turn of the event loop leave in one write; replies come back in
the order sent (Redis answers a connection's commands in order), parsed by hiredis, each resolving the
future at the head of the queue. No pool: one connection carries every request in flight.

A call that nobody waits on to answer a client (SETTLE: the client has its answer) can be sent `lazily`:
it waits up to LAZY_SECONDS for the next prompt call's write and leaves with it (or alone when that time
is up), so a request's settlement shares the write and the read of the next request's admission. On this
stack those two system calls cost more than the script does (bench/README.md, "Settling lazily").

Failure is redis-py's: a connection that fails, or a reply later than `timeout`, closes the connection and
fails every command in flight with ConnectionError / TimeoutError (redis.exceptions, so callers handle both
clients alike); the next call reconnects, and the calls that come meanwhile wait for that one attempt and
share its outcome, so none waits longer than one attempt (`connect_timeout` + `timeout`) however long Redis
stays silent. A caller that stops waiting does not disturb the order: its reply is read and dropped.
Redis' own error replies are ResponseError (NoScriptError for NOSCRIPT), per command.

A Redis that does not answer (a partition, a stuck server) is found out once, not by every call: while a
command has gone unanswered for STALL_SECONDS, and after a connection failed, calls raise RedisNotAnswering
at once instead of queueing behind it, but for one call at a time, at most every PROBE_SECONDS, that tries
to connect again (tests/gateway/test_redis_not_answering.py: through a 15 s partition, the requests after
the first seconds refused in milliseconds but the probes, where each had waited the 5 s timeout).
"""

import asyncio
import collections
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis import exceptions
from redis.asyncio.connection import RedisSSLContext
from redis.connection import SSLConnection, parse_url
from redis.exceptions import NoScriptError, ResponseError

from gateway.http import nobody_waits_for

logger = logging.getLogger(__name__)

Arg = str | bytes | int | float

LAZY_SECONDS = 0.002  # the longest a lazy call waits for a prompt one to share its write
# Redis answers the hot path's scripts in microseconds; a command unanswered this long is Redis not
# answering. Longer than Redis's own pauses: a fork for a snapshot takes tens of milliseconds, and with
# `appendfsync everysec` (ADR 0006) a write waits for an fsync that has taken over 2 s.
STALL_SECONDS = 2.5
PROBE_SECONDS = 1.0  # after a failed connection, calls fail at once this long before one tries again


class RedisNotAnswering(exceptions.ConnectionError):
    """Not sent: Redis is not answering the connection's commands, or failed a moment ago and another call
    is finding out whether it answers again."""


def pack(command: Sequence[Arg]) -> bytes:
    """A command in RESP: an array of bulk strings (integers and floats written out, text as UTF-8).

    hiredis packs it in C, a third of the CPU of the same loop in Python (~3 against ~9 µs for a script's
    two dozen arguments); a request packs two. It refuses anything else, booleans included."""
    try:
        args = command if type(command) is tuple else tuple(command)
        return hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types a one-item tuple
    except TypeError:
        refused = ", ".join(type(arg).__name__ for arg in command if type(arg) not in _PACKABLE)
        raise TypeError(f"a Redis argument must be str, bytes, int or float, not {refused}") from None


_PACKABLE = frozenset((str, bytes, int, float))


def _reply(reply: Any) -> Any:
    """An error reply as redis-py raises it: NOSCRIPT as NoScriptError, any other as ResponseError."""
    if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
        return NoScriptError(str(reply))
    return reply


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext | None:
    """For `rediss://`: the context redis-py's SSLConnection would use, from the URL's `ssl_*` options and
    with its defaults (the certificate and the host name checked)."""
    if options.get("connection_class") is not SSLConnection:
        return None
    given = {name.removeprefix("ssl_"): value for name, value in options.items() if name.startswith("ssl_")}
    return RedisSSLContext(**{"cert_reqs": "required", "check_hostname": True, **given}).get()


class _Protocol(asyncio.Protocol):
    """The socket's side: writes what the loop turn queued, hands each reply to the oldest waiting call."""

    def __init__(self, timeout: float, *, probe: bool = False) -> None:
        # Made in its event loop (RespConnection._connect). Kept: asyncio.get_running_loop() makes a
        # getpid() system call each time (CPython 3.11), a few µs in this VM.
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.flush_soon = False  # a flush is due at the end of this loop turn
        self.lazy_flush: asyncio.TimerHandle | None = None  # a flush for lazy calls alone, later
        self.closed = False
        self.failure: Exception | None = None  # what closed it
        self.stalled = False  # the oldest command has waited STALL_SECONDS: new calls are refused
        self.probe = probe  # made to find out whether Redis answers again: its stall is no news
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def send(self, command: bytes, *, lazy: bool = False) -> asyncio.Future[Any]:
        loop = self.loop
        future = loop.create_future()
        self.outgoing.append(command)
        self.waiting.append((future, time.monotonic()))
        if not lazy and not self.flush_soon:
            self.flush_soon = True
            loop.call_soon(self._flush)  # after the other calls of this turn have queued theirs
        elif lazy and not self.flush_soon and self.lazy_flush is None:
            self.lazy_flush = loop.call_later(LAZY_SECONDS, self._flush)
        return future

    def _flush(self) -> None:
        self.flush_soon = False
        if self.lazy_flush is not None:
            self.lazy_flush.cancel()
            self.lazy_flush = None
        if not self.outgoing:
            return  # an earlier flush took them
        data, self.outgoing = b"".join(self.outgoing), []
        if self.closed or self.transport is None:
            return  # connection_lost failed the calls already
        self.transport.write(data)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(min(STALL_SECONDS, self.timeout), self._check_late)

    def _check_late(self) -> None:
        """A reply later than STALL_SECONDS stalls the connection (new calls refused); later than `timeout`
        closes it (as redis-py's socket_timeout does)."""
        self.watchdog = None
        if not self.waiting or self.closed:
            return
        waited = time.monotonic() - self.waiting[0][1]
        if waited >= self.timeout:
            self._fail(exceptions.TimeoutError(f"Redis did not answer within {self.timeout} s"))
            return
        if waited >= STALL_SECONDS:
            if not self.stalled and not self.probe:
                logger.warning("Redis has not answered for %.1f s: calls refused until it does", waited)
            self.stalled = True
            self.watchdog = self.loop.call_later(self.timeout - waited, self._check_late)
        else:
            self.watchdog = self.loop.call_later(STALL_SECONDS - waited, self._check_late)

    def data_received(self, data: bytes) -> None:
        self.stalled = False
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:  # not RESP: whatever answers there is not Redis
                self._fail(exceptions.ConnectionError(f"Redis sent what is not RESP: {exc}"))
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: the stream is out of step, so stop trusting it
                self._fail(exceptions.ConnectionError("Redis sent a reply that no command asked for"))
                return
            future, _ = self.waiting.popleft()
            if not future.done():  # its caller stopped waiting; the reply is dropped in its turn
                future.set_result(_reply(reply))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exceptions.ConnectionError(f"the connection to Redis was lost: {exc or 'closed'}"))

    def _fail(self, error: Exception) -> None:
        if not self.closed:
            self.closed, self.failure = True, error
        if self.lazy_flush is not None:
            self.lazy_flush.cancel()
            self.lazy_flush = None
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        waiting, self.waiting = self.waiting, collections.deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class RespConnection:
    """`await connection.call(("EVALSHA", sha, 2, key1, key2, arg))`: the reply, or the error it was."""

    def __init__(
        self, url: str, *, timeout: float = 5.0, connect_timeout: float = 2.0, name: str = "hyperinfer"
    ) -> None:
        self.options = parse_url(url)
        self.timeout, self.connect_timeout, self.name = timeout, connect_timeout, name
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Task[_Protocol] | None = None  # the one attempt every caller waits for
        # Redis failed or stopped answering: until then (monotonic) calls fail at once; after it, one call
        # at a time tries again. None while it answers.
        self.down_until: float | None = None

    async def call(self, command: Sequence[Arg], *, lazy: bool = False) -> Any:
        """`lazy`: the call may wait up to LAZY_SECONDS to leave with the next prompt call (module doc)."""
        protocol = self.protocol
        if protocol is None or protocol.closed:
            protocol = await self._connected()
        elif protocol.stalled:
            raise RedisNotAnswering(f"Redis has not answered a command for {STALL_SECONDS:g} s")
        reply = await protocol.send(pack(command), lazy=lazy)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _connected(self) -> _Protocol:
        """The calls that find the connection closed wait for one attempt, and share its failure: each trying
        in turn behind a lock made the last of N wait N attempts (a Redis that accepts and never answers
        takes `timeout` an attempt; 16 clients waited out a 20 s partition where each should fail in 5 s).
        After a failure the attempt is a probe: the calls meanwhile fail at once."""
        failed = self.protocol.failure if self.protocol is not None else None
        if self.down_until is None and isinstance(failed, exceptions.TimeoutError):
            self.down_until = 0.0  # it stopped answering (logged when it stalled): probe at once
        if self.connecting is None:
            if self.down_until is not None and time.monotonic() < self.down_until:
                raise RedisNotAnswering("Redis did not answer a moment ago")
            self.connecting = asyncio.create_task(self._connect_once())
            self.connecting.add_done_callback(nobody_waits_for)
        elif self.down_until is not None:
            raise RedisNotAnswering("Redis is being asked whether it answers again")
        # Shielded: a caller that stops waiting does not cancel the attempt the others wait for.
        return await asyncio.shield(self.connecting)

    async def _connect_once(self) -> _Protocol:
        try:
            self.protocol = await self._connect()
        except exceptions.RedisError as exc:
            if self.down_until is None:
                logger.warning("Redis does not answer (%s); the meter refuses requests until it does", exc)
            self.down_until = time.monotonic() + PROBE_SECONDS
            raise
        else:
            if self.down_until is not None:
                logger.warning("Redis answers again")
                self.down_until = None
            return self.protocol
        finally:
            self.connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        probe = self.down_until is not None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self.timeout, probe=probe), options["path"]
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self.timeout, probe=probe),
                        options.get("host", "localhost"),
                        options.get("port", 6379),
                        ssl=_tls_context(options),
                    )
        except OSError as exc:  # TimeoutError included
            raise exceptions.ConnectionError(f"could not connect to Redis: {exc!r}") from exc
        await self._handshake(protocol)
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        """AUTH and SELECT as the URL says; an error reply closes the connection and is raised."""
        commands: list[list[Arg]] = []
        if options_password := self.options.get("password"):
            username = self.options.get("username")
            commands.append(["AUTH", *([username] if username else []), options_password])
        if self.options.get("db"):
            commands.append(["SELECT", self.options["db"]])
        commands.append(["CLIENT", "SETNAME", self.name])
        replies = await asyncio.gather(*(protocol.send(pack(command)) for command in commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                protocol._fail(exceptions.ConnectionError(f"Redis refused the connection: {reply}"))
                raise exceptions.ConnectionError(f"Redis refused the connection: {reply}")

    def close(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        if self.protocol is not None and not self.protocol.closed:
            self.protocol._fail(exceptions.ConnectionError("the connection was closed"))
        self.protocol = None

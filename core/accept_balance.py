"""uvloop for uvicorn's workers, each accepting connections only while it holds no more than the least busy.

uvicorn's workers share one listening socket, and libuv accepts every connection waiting on it in one go:
the worker that wakes first takes a burst of connections, and keep-alive clients stay where they landed.
Measured with the bench's 8 clients: one worker served all of them while the other sat idle, so the gateway
ran on one core of two (bench/README.md, "Connections spread over the workers"; ADR 0023).

Here a worker accepts one connection at a time, and only while it holds no more open connections than the
least busy of its siblings, as a least-connections balancer would. The workers publish their counts in a small
shared file named after the listening socket, one slot per worker. A worker that holds more waits a moment
for a sibling to take the connection; if no sibling takes it within `MAX_WAIT_SECONDS` (every one busy, or
stopped), it takes it itself, so no connection waits long.

Run the server with it: `uvicorn … --workers N --loop core.accept_balance:new_event_loop`. A single worker
(no shared socket) serves as plain uvloop does.
"""

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvloop

from core.processes import current_pid, process_alive

logger = logging.getLogger(__name__)

SLOTS = 64  # workers sharing one socket, at most (uvicorn's --workers); more accept unbalanced
_SLOT = struct.Struct("=qq")  # (pid, open connections)
# How soon a worker that held back looks at the waiting connection again: at first, then at most (the pause
# doubles while it waits, so a long wait costs few wake-ups).
RETRY_SECONDS, MAX_RETRY_SECONDS = 0.0005, 0.008
# How long it leaves a waiting connection to its siblings, at most: long enough for a sibling on a busy
# machine to be scheduled, short beside a connection's life (ACCEPT_MAX_WAIT_MS in the environment).
MAX_WAIT_SECONDS = float(os.environ.get("ACCEPT_MAX_WAIT_MS", "50")) / 1000
ERROR_RETRY_SECONDS = 0.1  # after accept(2) failed (out of file descriptors, say)


class Slots:
    """The shared file: each worker's pid and open connections, for the workers of one listening socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self.locked():
            if os.fstat(self._fd).st_size < SLOTS * _SLOT.size:
                os.ftruncate(self._fd, SLOTS * _SLOT.size)
            self._map = mmap.mmap(self._fd, SLOTS * _SLOT.size)
            self.index = self._claim()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _claim(self) -> int | None:
        """A free slot (never used, or a dead worker's) for this process; called under the file's lock."""
        pid = current_pid()
        for index in range(SLOTS):
            owner, _ = _SLOT.unpack_from(self._map, index * _SLOT.size)
            if owner == 0 or not _sibling(owner):
                _SLOT.pack_into(self._map, index * _SLOT.size, pid, 0)
                return index
        return None

    def publish(self, connections: int) -> None:
        if self.index is not None:
            _SLOT.pack_into(self._map, self.index * _SLOT.size, current_pid(), connections)

    def fewest_elsewhere(self) -> int | None:
        """The fewest open connections a live sibling holds, or None when there is none."""
        return self.siblings()[0]

    def siblings(self) -> tuple[int | None, int]:
        """(the fewest open connections a live sibling holds or None when there is none, all they hold)."""
        fewest, total = None, 0
        for index in range(SLOTS):
            if index == self.index:
                continue
            owner, connections = _SLOT.unpack_from(self._map, index * _SLOT.size)
            if owner and _sibling(owner):
                total += connections
                fewest = connections if fewest is None else min(fewest, connections)
        return fewest, total

    def release(self) -> None:
        """This worker's slot freed; the file removed with the last worker of the socket."""
        if self._map.closed:
            return
        with self.locked():
            if self.index is not None:
                _SLOT.pack_into(self._map, self.index * _SLOT.size, 0, 0)
                self.index = None
            if self.fewest_elsewhere() is None:
                self.path.unlink(missing_ok=True)
        self._map.close()
        os.close(self._fd)


def _sibling(pid: int) -> bool:
    """Whether `pid` is a live worker of this worker's supervisor (not a dead one's pid, reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: alive is the best it can tell
        return process_alive(pid)
    return int(stat.rsplit(b")", 1)[1].split()[1]) == os.getppid()


PREFIX = "hyperinfer-accept-"


def slots_path(sock: socket.socket) -> Path:
    """One file per listening socket: its inode is the same in every worker that inherited it."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"{PREFIX}{os.fstat(sock.fileno()).st_ino}"


def sweep_dead(directory: Path, keep: Path) -> None:
    """Remove the slot files of servers whose workers are all gone (killed before they could remove it)."""
    for path in directory.glob(f"{PREFIX}*"):
        if path == keep:
            continue
        try:
            data = path.read_bytes()
        except OSError:  # removed meanwhile, or another user's
            continue
        owners = [_SLOT.unpack_from(data, at)[0] for at in range(0, len(data) - _SLOT.size + 1, _SLOT.size)]
        if not any(owner and process_alive(owner) for owner in owners):
            with contextlib.suppress(OSError):
                path.unlink()


class _Accepted(socket.socket):
    """An accepted connection's socket, which tells its server when it closes: the transport serving it
    detaches it when the connection ends (uvloop), or it is closed."""

    __slots__ = ("_on_close",)

    def __init__(self, conn: socket.socket, on_close: Callable[[], None]) -> None:
        super().__init__(conn.family, conn.type, conn.proto, fileno=conn.detach())
        self._on_close: Callable[[], None] | None = on_close

    def _report_closed(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def detach(self) -> int:
        self._report_closed()
        return super().detach()

    def close(self) -> None:
        self._report_closed()
        super().close()


class BalancedServer:
    """What uvicorn needs of `loop.create_server`'s server, accepting as the module's docstring says."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        ssl: Any,
        backlog: int,
    ) -> None:
        self._loop, self._protocol_factory, self._sock, self._ssl = loop, protocol_factory, sock, ssl
        path = slots_path(sock)
        sweep_dead(path.parent, keep=path)
        self._slots = Slots(path)
        self._held = 0  # open connections accepted here
        self._starting: set[asyncio.Task[None]] = set()
        self._waiting_since: float | None = None  # when this worker first held back the waiting connection
        self._waiting_on = 0  # the connections its siblings held then
        self._retry: asyncio.TimerHandle | None = None
        self._closed = asyncio.Event()
        sock.setblocking(False)
        sock.listen(backlog)  # as create_server does: uvicorn's supervisor only binds it
        loop.add_reader(sock.fileno(), self._readable)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def _one_closed(self) -> None:
        self._held -= 1
        if not self._closed.is_set():
            self._slots.publish(self._held)

    def _readable(self) -> None:
        # Under the file's lock, so two workers cannot both count and then both accept.
        with self._slots.locked():
            conn = self._accept_if_least_busy()
        if conn is not None:
            task = self._loop.create_task(self._serve(conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    def _accept_if_least_busy(self) -> socket.socket | None:
        held = self._held
        fewest, elsewhere = self._slots.siblings()
        if fewest is not None and held > fewest:
            now = time.monotonic()
            # The wait starts again whenever a sibling took (or closed) a connection meanwhile: it is awake.
            if self._waiting_since is None or elsewhere != self._waiting_on:
                self._waiting_since, self._waiting_on = now, elsewhere
            waited = now - self._waiting_since
            if waited < MAX_WAIT_SECONDS:
                self._hold_back(min(max(RETRY_SECONDS, waited), MAX_RETRY_SECONDS))
                return None
        self._waiting_since = None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None  # a sibling took it
        except OSError as exc:  # out of file descriptors, say: the connection waits, the worker goes on
            logger.warning("accept failed: %s", exc)
            self._hold_back(ERROR_RETRY_SECONDS)
            return None
        conn.setblocking(False)
        self._held += 1
        self._slots.publish(self._held)
        return _Accepted(conn, self._one_closed)

    def _hold_back(self, seconds: float) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed.is_set():
            self._loop.add_reader(self._sock.fileno(), self._readable)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn, ssl=self._ssl)
        except Exception as exc:  # gone before it was set up, say
            logger.info("an accepted connection failed to start: %s", exc)
            conn.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._slots.release()

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class BalancedLoop(uvloop.Loop):
    """uvloop, whose servers on an inherited socket (uvicorn's workers) accept as `BalancedServer` does."""

    async def create_server(
        self, protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        sock = kwargs.get("sock")
        if sock is None or host is not None or port is not None:
            return await super().create_server(protocol_factory, host, port, **kwargs)
        return BalancedServer(self, protocol_factory, sock, kwargs.get("ssl"), kwargs.get("backlog", 100))


def new_event_loop() -> BalancedLoop:
    """uvicorn's `--loop` hook (a custom loop factory): the event loop each worker runs."""
    return BalancedLoop()

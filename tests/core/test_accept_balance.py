"""core/accept_balance.py: the workers of one uvicorn server share its listening socket, and each holds an
even share of the keep-alive connections, even when they all arrive at once; a stopped worker's share goes to
the others without a connection waiting on it; the shared slot file goes when the server stops. Real uvicorn
processes on loopback (tests/core/pid_app.py answers each request with its worker's pid)."""

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core.accept_balance import _SLOT, SLOTS, Slots, sweep_dead

ROOT = Path(__file__).resolve().parents[2]
BALANCED = "core.accept_balance:new_event_loop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def workers(self) -> list[int]:
        """The supervisor's worker processes (not multiprocessing's resource tracker, its child too)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        pids = [int(pid) for pid in children.split()]
        return [pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def slot_files(self) -> set[str]:
        """The slot files the workers have mapped (from /proc/<pid>/maps)."""
        found = set()
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "hyperinfer-accept-" in line:
                    found.add(line.split()[-1])
        return found


def start_uvicorn(log: Path, *flags: str, max_wait_ms: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    """tests/core/pid_app.py served by uvicorn with the balanced loop, in its own process group. A long
    `max_wait_ms` makes the spread exact on a busy machine too, where a sibling may wait for a core."""
    env = os.environ | ({"ACCEPT_MAX_WAIT_MS": str(max_wait_ms)} if max_wait_ms else {})
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.core.pid_app:app", "--port", str(port), "--loop"]
    with log.open("wb") as out:
        argv += [BALANCED, *flags]
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, port


@contextlib.contextmanager
def uvicorn_server(tmp_path: Path, workers: int = 2, max_wait_ms: int = 0) -> Iterator[Server]:
    log = tmp_path / "uvicorn.log"
    flags = ("--workers", str(workers), "--lifespan", "on")
    process, port = start_uvicorn(log, *flags, max_wait_ms=max_wait_ms)
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + 30
        # Each worker logs this just before it opens its server on the shared socket.
        while log.read_text().count("Application startup complete") < workers:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        while len(server.slot_files()) != 1 or not all(_mapped(pid) for pid in server.workers()):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _mapped(pid: int) -> bool:
    return "hyperinfer-accept-" in Path(f"/proc/{pid}/maps").read_text()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def served_by(conn: socket.socket) -> int:
    """One keep-alive request on the connection: the pid of the worker that answered it."""
    conn.sendall(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += conn.recv(4096)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(headers[b"content-length"])
    while len(body) < length:
        body += conn.recv(4096)
    return int(body)


def test_a_burst_of_connections_is_shared_evenly_by_the_workers(tmp_path):
    with uvicorn_server(tmp_path, max_wait_ms=5000) as server:
        conns: list[socket.socket] = []
        try:
            for _ in range(3):  # three bursts, each on top of the last (as clients add connections)
                burst = [connect(server.port) for _ in range(8)]  # all at once, before any request
                conns += burst
                held = collections.Counter(served_by(conn) for conn in burst)
                assert sorted(held.values()) == [4, 4], held
                assert set(held) == set(server.workers())
            # Every connection stays with its worker: the next request on each is served by the same.
            assert sorted(collections.Counter(served_by(conn) for conn in conns).values()) == [12, 12]
        finally:
            for conn in conns:
                conn.close()


def test_a_closed_connection_is_counted_out_of_its_workers_share(tmp_path):
    with uvicorn_server(tmp_path, max_wait_ms=5000) as server:
        conns = [connect(server.port) for _ in range(8)]
        try:
            by_worker = collections.defaultdict(list)
            for conn in conns:
                by_worker[served_by(conn)].append(conn)
            emptied, _ = by_worker
            for conn in by_worker[emptied]:  # the clients of one worker leave
                conn.close()
            deadline = time.monotonic() + 10
            while _open_connections(emptied) > 0:  # until it has closed its ends
                assert time.monotonic() < deadline
                time.sleep(0.02)
            conns += (fresh := [connect(server.port) for _ in range(4)])
            assert [served_by(conn) for conn in fresh] == [emptied] * 4  # all to the emptied one
        finally:
            for conn in conns:
                conn.close()


def _open_connections(pid: int) -> int:
    """The TCP connections the worker still has open (its fds; pid_app opens none of its own). A client
    that left puts the worker's end in CLOSE_WAIT at once: it counts here until the worker has closed it."""
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    connections = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        connections += fields[3] != "0A" and fields[9] in inodes  # 0A: LISTEN
    return connections


def test_connections_opened_one_by_one_alternate_between_the_workers(tmp_path):
    with uvicorn_server(tmp_path, workers=3, max_wait_ms=5000) as server:
        conns = []
        try:
            for _ in range(9):
                conns.append(connect(server.port))
                served_by(conns[-1])  # accepted and served before the next one opens
            held = collections.Counter(served_by(conn) for conn in conns)
            assert sorted(held.values()) == [3, 3, 3], held
        finally:
            for conn in conns:
                conn.close()


def test_a_stopped_worker_leaves_no_connection_waiting(tmp_path):
    with uvicorn_server(tmp_path) as server:  # the default wait: 50 ms
        stopped, running = server.workers()
        first = [connect(server.port) for _ in range(2)]
        assert {served_by(conn) for conn in first} == {stopped, running}
        os.kill(stopped, signal.SIGSTOP)  # a worker stuck for good: its siblings must not wait on it
        try:
            for _ in range(4):  # the running worker holds more each time, and takes each one all the same
                started = time.monotonic()
                with connect(server.port) as conn:
                    assert served_by(conn) == running
                assert time.monotonic() - started < 1.0
        finally:
            os.kill(stopped, signal.SIGCONT)
            for conn in first:
                conn.close()


def test_the_slot_file_goes_with_the_server(tmp_path):
    with uvicorn_server(tmp_path) as server:
        (path,) = server.slot_files()
        assert Path(path).exists()
    assert server.process.returncode == 0
    assert not Path(path).exists()


def test_plain_uvloop_is_what_a_single_worker_keeps(tmp_path):
    """One worker has no sibling: it serves from uvloop's own server, and maps no slot file."""
    log = tmp_path / "one.log"
    process, port = start_uvicorn(log)
    try:
        deadline = time.monotonic() + 30
        while "Uvicorn running" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        with connect(port) as conn:
            assert served_by(conn) == process.pid
        assert "hyperinfer-accept-" not in Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


# --- The slot file itself ----------------------------------------------------------------------------------


def test_slots_show_the_fewest_connections_a_live_sibling_holds(tmp_path):
    path = tmp_path / "slots"
    mine, sibling = Slots(path), Slots(path)  # two slots of this process stand for two workers
    assert (mine.index, sibling.index) == (0, 1)
    assert mine.fewest_elsewhere() == 0
    sibling.publish(5)
    mine.publish(2)
    assert mine.fewest_elsewhere() == 5
    assert sibling.fewest_elsewhere() == 2
    sibling.release()
    assert mine.fewest_elsewhere() is None  # no sibling left
    assert path.exists()
    mine.release()
    assert not path.exists()  # the last one out removes it


def test_a_dead_workers_slot_is_ignored_and_taken_over(tmp_path):
    path = tmp_path / "slots"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    mine = Slots(path)
    _SLOT.pack_into(mine._map, 1 * _SLOT.size, dead_pid, 0)  # a worker killed while it held nothing
    assert mine.fewest_elsewhere() is None  # so nobody waits for it
    newcomer = Slots(path)
    assert newcomer.index == 1  # the restarted worker takes its slot
    assert SLOTS * _SLOT.size == path.stat().st_size
    newcomer.release()
    mine.release()


def test_more_workers_than_slots_accept_without_a_slot(tmp_path):
    path = tmp_path / "slots"
    taken = [Slots(path) for _ in range(SLOTS)]
    extra = Slots(path)
    assert extra.index is None
    extra.publish(3)  # a no-op: it is not counted
    taken[0].publish(1)
    assert extra.fewest_elsewhere() == 0  # it still sees the others
    assert [slots.index for slots in taken] == list(range(SLOTS))
    extra.release()
    for slots in taken:
        slots.release()
    assert not path.exists()


def test_a_starting_server_removes_the_slot_files_of_servers_that_are_all_gone(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    gone, alive, own, other = (tmp_path / f"hyperinfer-accept-{n}" for n in (1, 2, 3, 4))
    gone.write_bytes(_SLOT.pack(dead_pid, 3) + _SLOT.pack(0, 0))  # its workers were killed
    alive.write_bytes(_SLOT.pack(0, 0) + _SLOT.pack(os.getpid(), 1))  # a live server's
    own.write_bytes(_SLOT.pack(0, 0))  # the starting server's own (kept even while empty)
    other.with_name("unrelated").write_bytes(_SLOT.pack(dead_pid, 1))
    sweep_dead(tmp_path, keep=own)
    assert sorted(path.name for path in tmp_path.iterdir()) == [alive.name, own.name, "unrelated"]

"""core/processes.py: the kept process id follows a fork; the collector is tuned only in a server's own
process (the app served from the main thread), never in a program that runs the app in a side thread; a
supervisor's worker stops when the supervisor is killed, and nothing else is tied to its parent; the C
allocator's free pages go back to the system when asked."""

import contextlib
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from core.processes import (
    SERVER_GEN0_THRESHOLD,
    current_pid,
    exit_if_still_running,
    exit_with_parent,
    settle_server_heap,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_kept_pid_is_this_processes_and_a_forked_childs_own():
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports what it keeps, then leaves at once
        os.write(write, f"{current_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    kept, actual = os.read(read, 100).decode().split()
    os.waitpid(child, 0)
    assert kept == actual == str(child)
    assert current_pid() == os.getpid() != child


def test_a_side_thread_leaves_the_heap_alone():
    before = gc.get_threshold(), gc.get_freeze_count()
    tuned = []
    thread = threading.Thread(target=lambda: tuned.append(settle_server_heap()))
    thread.start()
    thread.join()
    assert tuned == [False]
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_server_process_freezes_its_start_up_heap_and_collects_less_often():
    script = (
        "import gc; from core.processes import settle_server_heap; "
        "frozen_before = gc.get_freeze_count(); tuned = settle_server_heap(); "
        "print(tuned, frozen_before, gc.get_freeze_count(), gc.get_threshold()[0])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    tuned, frozen_before, frozen_after, threshold = out.split()
    assert tuned == "True"
    assert int(frozen_before) == 0 and int(frozen_after) > 1000  # every object of the start-up heap
    assert int(threshold) == SERVER_GEN0_THRESHOLD


# A supervisor as uvicorn's: it starts a worker with multiprocessing (spawn), prints the worker's pid, waits.
# The worker ties itself to it, notes a SIGTERM in a file (its graceful stop), and otherwise sleeps.
SUPERVISOR = """
import multiprocessing, os, signal, sys, time
from pathlib import Path

from core.processes import exit_with_parent

def worker(note):
    def stop(signum, frame):
        Path(note).write_text("SIGTERM")
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    Path(note + ".armed").write_text(str(exit_with_parent()))
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=worker, args=(sys.argv[1],))
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""


def _wait_for(path: Path, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)
    time.sleep(0.05)  # written whole
    return path.read_text()


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_worker_gets_sigterm_when_its_supervisor_is_killed(tmp_path):
    script = tmp_path / "supervisor.py"
    script.write_text(textwrap.dedent(SUPERVISOR))
    note = tmp_path / "worker-note"
    supervisor = subprocess.Popen(
        [sys.executable, str(script), str(note)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    worker_pid = None
    try:
        assert supervisor.stdout is not None
        worker_pid = int(supervisor.stdout.readline())
        assert _wait_for(Path(f"{note}.armed")) == "True"
        assert not note.exists()  # alive and untouched while its supervisor lives
        supervisor.kill()  # SIGKILL: the supervisor cannot stop its worker itself
        supervisor.wait()
        assert _wait_for(note) == "SIGTERM"  # the graceful stop, not a kill
        assert _gone(worker_pid)
    finally:
        supervisor.kill()
        supervisor.wait()
        if worker_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker_pid, signal.SIGKILL)


def test_a_process_no_supervisor_started_is_not_tied_to_its_parent():
    # The test process (and a single-process server) is not a multiprocessing child: nothing is armed.
    assert exit_with_parent() is False


FRAGMENTED_HEAP = """
import sys
from core.processes import release_free_memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

# A burst of buffers (the journal's lines in a spill), one in a hundred still alive afterwards: the C
# allocator cannot give back the pages between them on its own.
burst = [bytearray(2000) for _ in range(60_000)]
kept = burst[::100]
del burst
before = rss_mb()
released = release_free_memory()
print(released, before - rss_mb())
"""


def test_free_memory_between_live_buffers_goes_back_to_the_system():
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    released, given_back_mb = out.stdout.split()
    assert released == "True"  # glibc, as on every machine this runs on
    assert float(given_back_mb) > 80  # of the ~115 MB freed between the kept buffers


def test_a_stopped_process_held_by_a_stuck_thread_exits_after_its_grace():
    """A thread stuck in I/O (here: waiting for ever) keeps the interpreter from exiting; armed after the
    shutdown's work, the timer ends the process `seconds` later, with a line saying why."""
    script = textwrap.dedent(
        """
        import logging, threading
        from core.processes import exit_if_still_running
        logging.basicConfig()
        threading.Thread(target=threading.Event().wait).start()  # not a daemon: the interpreter waits for it
        exit_if_still_running(0.5)
        """
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and time.monotonic() - started < 10
    assert "after the shutdown's work (threads stuck in I/O): exiting" in result.stderr


def test_the_exit_timer_is_not_armed_from_a_side_thread():
    """A server run in a side thread (the tests' ServerThread) stopping is not its process stopping."""
    armed: list[object] = []
    thread = threading.Thread(target=lambda: armed.append(exit_if_still_running(0.01)))
    thread.start()
    thread.join()
    assert armed == [None]

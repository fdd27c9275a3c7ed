"""Process-level facts and settings: this process's id, whether another is alive (for the files processes
leave behind, the metrics directory's), the garbage collector's settings for a long-running server, its
limit on open files, and a server worker's tie to its supervisor."""

import ctypes
import gc
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading

logger = logging.getLogger(__name__)

# The youngest generation's threshold for a server process: Python's default (700 allocations) runs a
# collection every few requests, each walking every young object still alive (the requests in flight).
# Fewer, larger collections walk those survivors less often; most request objects die by refcount anyway.
SERVER_GEN0_THRESHOLD = 20_000


# This process's id, kept: os.getpid() is a system call, and prometheus_client asks for it on every metric
# it records (to notice a fork), ~10 times a request. A forked child (Celery's prefork pool) learns its own.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """os.getpid(), without the system call."""
    return _pid


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the kernel only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def settle_server_heap() -> bool:
    """Once a server process has started (modules imported, settings and caches loaded): what exists now
    lives as long as the process, so the collector stops walking it (gc.freeze), and it collects the young
    generation less often. Measured in bench/README.md ("The garbage collector").

    Only a process that serves from its main thread (a uvicorn worker) is a server's own; one that runs the
    app in a side thread (the tests, a program embedding it) keeps its heap as it is. True when tuned."""
    if threading.current_thread() is not threading.main_thread():
        return False
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVER_GEN0_THRESHOLD, older, oldest)
    return True


def raise_open_files_limit() -> int:
    """A server process's soft limit on open files raised to its hard limit, as Go's runtime does for every
    program: each stream in flight holds two sockets (its client's and its upstream's), and systemd starts
    a service with a soft limit of 1,024 (hard: 524,288). Started with 128, a gateway answered none of 200
    streams at once: 108 connections dropped, 92 `internal_error`s ("Too many open files" opening a
    database connection); raised, all 200 (tests/gateway/test_open_files.py). Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, _OPEN_FILES_WITHOUT_A_LIMIT)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError) as exc:  # a kernel's nr_open below the hard limit, say
        logger.warning("could not raise the open files limit from %d to %d: %s", soft, wanted, exc)
        return soft
    return wanted


_OPEN_FILES_WITHOUT_A_LIMIT = 1 << 20  # the soft limit taken when the hard one is unlimited

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def exit_with_parent() -> bool:
    """A worker that a supervisor started (uvicorn --workers: a multiprocessing child) gets SIGTERM, the
    graceful stop (requests in flight finish and settle), when the supervisor dies — even by SIGKILL. Else
    it lives on as an orphan: serving on the shared socket, holding its database connections, with nobody
    to restart or stop it (seen: a killed benchmark's workers still connected to its dropped database).

    Linux only (prctl); True when armed. A process that is not a multiprocessing child (a single-process
    server, the tests) is left alone."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("could not tie this worker to its supervisor: %s", os.strerror(ctypes.get_errno()))
        return False
    if os.getppid() != parent.pid:  # the supervisor died before the tie was made: stop as it would have
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def release_free_memory() -> bool:
    """Give the C allocator's free pages back to the system (glibc's malloc_trim). After a burst of large
    short-lived buffers (the journal's spill and compaction, in a PostgreSQL outage) glibc keeps the freed
    pages wherever a live allocation sits above them, and the process's memory stays at its high-water mark:
    a journal at its limit after 40 s of an outage held 165 MB, 143 MB once trimmed, its live entries ~33 MB
    of it (bench/README.md). A few milliseconds; True when it ran (glibc), False elsewhere."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def exit_if_still_running(seconds: float) -> threading.Timer | None:
    """Once a stopping process has done what it owes (the journal synced, the writer drained or its records
    left queued): if it is still running `seconds` later, it exits. A thread stuck on a server that does not
    answer (PostgreSQL through a partition: the query waits until TCP gives up, or for ever when something
    still acknowledges its packets) would hold it: asyncio.run joins its executor's threads on the way out,
    and so does the interpreter. A daemon timer (it holds nothing up itself), which the caller may cancel
    once the process is out of asyncio.run.

    Armed only from the main thread, as settle_server_heap: a server run in a side thread (the tests, a
    program embedding it) is not its process stopping. None when not armed."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def exit_now() -> None:
        logger.warning(
            "still running %g s after the shutdown's work (threads stuck in I/O): exiting", seconds
        )
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()
    return timer

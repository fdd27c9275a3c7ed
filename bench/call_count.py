"""`bench.run --count-calls`: how many Python calls a request makes in each server, counted by cProfile.

Timings on a shared 2-core VM drift by a third between runs; the number of calls a request makes does not,
so it shows what a change to the hot path removed (or added) even when the clock cannot. Each uvicorn
worker of the bare proxy and the gateway loads `call_count_site/sitecustomize.py`; around each of their
cells the bench signals the workers to start counting and to write what they counted, and divides the sum
by the requests the cell sent. It counts the event loop's thread only (the meter writer's process and the
workers' database threads are not in it), and the profiler slows the servers down about twofold: take
timings from a run without it.
"""

import os
import pstats
import signal
import time
from pathlib import Path

from bench import memory

SITE = Path(__file__).resolve().parent / "call_count_site"


def server_env(directory: Path) -> dict[str, str]:
    """What a measured server's environment gains: the sitecustomize first on its path, and where to write."""
    path = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "BENCH_COUNT_CALLS_DIR": str(directory)}


class CallCounter:
    """Counts one server's calls over a cell: `start()` before it, `calls()` after."""

    def __init__(self, supervisor: int, directory: Path) -> None:
        self.supervisor, self.directory = supervisor, directory

    def _workers(self) -> list[int]:
        return memory.workers(self.supervisor) or [self.supervisor]  # one worker: uvicorn runs it itself

    def start(self) -> None:
        for stale in self.directory.glob("*.prof"):
            stale.unlink()
        self.pids = self._workers()
        for pid in self.pids:
            os.kill(pid, signal.SIGUSR1)

    def calls(self, timeout: float = 20.0) -> int | None:
        """The calls every worker counted since `start()`, or None if one of them did not write them."""
        for pid in self.pids:
            os.kill(pid, signal.SIGUSR2)
        paths = [self.directory / f"{pid}.prof" for pid in self.pids]
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in paths):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return sum(pstats.Stats(str(path)).total_calls for path in paths)  # type: ignore[attr-defined]

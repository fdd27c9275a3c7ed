"""Put on PYTHONPATH by `bench.run --count-calls` for the servers it measures: all their processes load it.

SIGUSR1 starts counting the Python calls of the process's main thread (its event loop) afresh, with
cProfile; SIGUSR2 stops and writes them to $BENCH_COUNT_CALLS_DIR/<pid>.prof (bench/call_count.py reads
it). A process nobody signals counts nothing and pays nothing.
"""

import cProfile
import os
import signal

_directory = os.environ.get("BENCH_COUNT_CALLS_DIR")
_profiler: cProfile.Profile | None = None


def _start(signum: int, frame: object) -> None:
    global _profiler
    if _profiler is not None:
        _profiler.disable()
    _profiler = cProfile.Profile()
    _profiler.enable()


def _write(signum: int, frame: object) -> None:
    global _profiler
    if _profiler is None or _directory is None:
        return
    _profiler.disable()
    path = os.path.join(_directory, f"{os.getpid()}.prof")
    _profiler.dump_stats(path + ".part")
    os.replace(path + ".part", path)  # whole, or not there yet
    _profiler = None


if _directory:
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _write)

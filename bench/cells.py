"""The run behind the tables (`python -m bench.run` without --soak): one request of each mode to each
target first, then every cell (one mode, one concurrency, one target) for the same fixed time, with the
target's CPU time and the machine's measured around it."""

import functools

from bench.call_count import CallCounter
from bench.cpu_time import group_cpu_seconds, host_cpu_times
from bench.load import MODES, CellResult, Target, preflight, run_cell
from bench.stack import BenchError, Processes, log


async def drive(
    targets: list[Target],
    *,
    modes: list[str],
    concurrencies: list[int],
    warmup: float,
    duration: float,
    last_piece: bytes,
    pgids: dict[str, tuple[int, ...]],
    processes: Processes,
    call_counters: dict[str, CallCounter] | None = None,
    writer_pgid: int | None = None,
) -> list[CellResult]:
    """Each cell runs direct, bare proxy, gateway (and LiteLLM) in turn, so they share the machine's
    state. `pgids` maps a target's name to the process groups that serve it; `call_counters` (with
    --count-calls) the targets whose Python calls are counted over each cell; `writer_pgid` the gateway's
    meter writer, whose share of the gateway's CPU is reported apart."""
    for mode in modes:
        for target in targets:
            problem = await preflight(target, MODES[mode], last_piece)
            if problem:
                raise BenchError(f"{target.name} failed a single {mode} request before the load: {problem}")
    cells: list[CellResult] = []
    for mode in modes:
        for concurrency in concurrencies:
            for target in targets:
                pgid = pgids.get(target.name)
                processes.check_alive()
                counter = (call_counters or {}).get(target.name)
                if counter is not None:
                    counter.start()
                cell = await run_cell(
                    target,
                    stream=MODES[mode],
                    concurrency=concurrency,
                    warmup=warmup,
                    duration=duration,
                    last_piece=last_piece,
                    cpu_probe=None if pgid is None else functools.partial(group_cpu_seconds, *pgid),
                    writer_probe=functools.partial(group_cpu_seconds, writer_pgid)
                    if writer_pgid is not None and target.name == "gateway"
                    else None,
                    host_probe=host_cpu_times,
                )
                if counter is not None:
                    cell.calls = counter.calls()
                cells.append(cell)
                errors = f", {cell.error_count} errors" if cell.error_count else ""
                log(f"  {mode:9} c={concurrency:<4} {target.name:7} {cell.rps:9,.1f} req/s{errors}")
    return cells

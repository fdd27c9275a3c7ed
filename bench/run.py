"""Measure what the gateway costs: the same load against a mock upstream directly, through a bare proxy (the
floor: bench/bare_proxy.py), then through the gateway.

    .venv/bin/python -m bench.run [--concurrency 1,8,32,64] [--duration 10] [--workers 2] [--tokens 20]
                                  [--modes nonstream,stream] [--format chat|responses|messages]
                                  [--database-url postgres://…/hyperinfer_bench --redis-url redis://…/3]
                                  [--json out.json] [--litellm-python ~/.cache/hyperinfer/litellm/bin/python]
    .venv/bin/python -m bench.run --soak 100000 [--concurrency 32] [--modes nonstream] [--database-url …]

It starts a mock OpenAI-compatible upstream (its own process), prepares a throwaway database (a temp SQLite
file, or a re-created PostgreSQL database and a flushed Redis database), loads a one-model catalog that routes
to the mock, creates a workspace with credits and an API key, starts the gateway as production runs it
(uvicorn, N workers, uvloop, httptools, no access log), and then, for each mode and concurrency, drives the
mock directly, the bare proxy, the gateway (and LiteLLM's proxy, when --litellm-python names a venv that has
it) with the same request for a fixed time. --soak N instead sends exactly N requests to the gateway and
samples its workers' memory as they go (bench/soak.py). All traffic is on 127.0.0.1. Every process it
started is stopped at the end, also on failure or Ctrl-C. See bench/README.md.
"""

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import cells, report, services_cpu, soak, summary
from bench.cpu_time import host_cpu_times
from bench.load import MODES, Target
from bench.mock_upstream import new_event_loop
from bench.stack import BenchError, Database, Processes, accounting, log, tail
from bench.targets import GATEWAY_PATHS, Launcher


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or any(value < 1 or value > 4096 for value in values):
        raise argparse.ArgumentTypeError("concurrencies must be between 1 and 4096")
    return values


def _modes(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"modes are nonstream and stream, got {text!r}")
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=_int_list, help="default 1,8,32,64 (with --soak: one value, default 32)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument("--tokens", type=int, default=20, help="content deltas per answer (default 20)")
    parser.add_argument("--modes", type=_modes, help="default nonstream,stream (with --soak: nonstream)")
    parser.add_argument(
        "--format",
        choices=list(GATEWAY_PATHS),
        default="chat",
        help="the ingress format clients use on the gateway (default chat); the upstream speaks chat",
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL to use; its database is re-created")
    parser.add_argument("--redis-url", default="", help="Redis to use (not db 0); its database is flushed")
    parser.add_argument(
        "--meter",
        choices=["sql", "redis"],
        help="the gateway's meter (default: the settings' choice, redis with PostgreSQL and Redis, else sql)",
    )
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0, help="mock's pause before answering")
    parser.add_argument(
        "--token-interval-ms", type=float, default=0.0, help="mock's pause between a stream's frames"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and the database afterwards")
    parser.add_argument(
        "--soak",
        type=int,
        metavar="N",
        help="instead of the table: exactly N gateway requests, the workers' memory sampled as they go",
    )
    parser.add_argument(
        "--litellm-python",
        type=Path,
        metavar="PATH",
        help="the python of a venv with litellm[proxy]: adds a LiteLLM proxy as a fourth target",
    )
    parser.add_argument(
        "--bare-balanced",
        action="store_true",
        help="the bare proxy's workers share connections out as the gateway's do (core/accept_balance.py); "
        "by default it runs uvicorn's own uvloop, as issue 18 defines it",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="the metered floor (bench/metered_floor.py: the bare proxy plus JSON and the two Redis "
        "scripts) in the bare proxy's place; needs --redis-url",
    )
    parser.add_argument(
        "--count-calls",
        action="store_true",
        help="also count the Python calls a request makes in the bare proxy and the gateway (cProfile; "
        "bench/call_count.py): repeatable where timings drift, but it slows both servers about twofold",
    )
    args = parser.parse_args(argv)
    if args.soak is not None:
        if not 1 <= args.soak <= 100_000_000:
            parser.error("--soak must be in [1, 100000000]")
        if args.concurrency is not None and len(args.concurrency) != 1:
            parser.error("--soak takes one --concurrency")
        if args.litellm_python or args.count_calls:
            parser.error("--soak drives the gateway alone; leave out --litellm-python and --count-calls")
    args.concurrency = args.concurrency or ([32] if args.soak else [1, 8, 32, 64])
    args.modes = args.modes or (["nonstream"] if args.soak or args.floor else ["nonstream", "stream"])
    if args.floor and (not args.redis_url or args.modes != ["nonstream"] or args.soak):
        parser.error(
            "--floor answers whole answers and holds in Redis: --modes nonstream, a --redis-url, no --soak"
        )
    if args.litellm_python and not args.litellm_python.is_file():
        parser.error(f"--litellm-python {args.litellm_python}: no such file")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 60]")
    if not 1 <= args.workers <= 64 or not 1 <= args.tokens <= 10_000:
        parser.error("--workers must be in [1, 64] and --tokens in [1, 10000]")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a postgres:// URL")
    if args.redis_url and not args.redis_url.startswith("redis://"):
        parser.error("--redis-url must be a redis:// URL")
    if args.meter == "redis" and not (args.database_url and args.redis_url):
        parser.error("--meter redis needs --database-url and --redis-url")
    return args


async def run_soak(
    args: argparse.Namespace, target: Target, launcher: Launcher, last_piece: bytes
) -> soak.SoakResult:
    """Exactly --soak requests to the gateway, its workers' (and its meter writer's) memory sampled as they
    go."""
    log(f"soak: {args.soak:,} requests, {args.concurrency[0]} clients, {', '.join(args.modes)}")
    pgids, writer = launcher.pgids["gateway"], launcher.meter_writer_pid
    return await soak.drive(
        target,
        supervisor=pgids[0],  # the first group's leader is uvicorn's supervisor
        pgids=pgids,
        others={} if writer is None else {writer: "writer"},
        streams=[MODES[mode] for mode in args.modes],
        concurrency=args.concurrency[0],
        total=args.soak,
        last_piece=last_piece,
        log=log,
        services=services_cpu.readers(redis_url=args.redis_url, database_url=args.database_url),
    )


def background_load(seconds: float = 3.0) -> float | None:
    """Share of the machine's CPU busy while the benchmark runs nothing: other tenants of the machine."""
    before = host_cpu_times()
    time.sleep(seconds)
    after = host_cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy = (after[0] - before[0]) / (after[1] - before[1])
    log(f"machine CPU busy with other processes: {busy * 100:.0f}%")
    if busy > 0.10:
        log(
            "warning: the machine is not idle; the gateway and the mock will get less CPU than on a quiet one"
        )
    return busy


def _settled_accounting(env: dict[str, str], timeout: float = 30.0) -> dict[str, Any]:
    """The billing state once nothing is held or waiting to be written any more (settlement runs after
    each response; with the Redis meter, the writers then flush to PostgreSQL)."""
    deadline = time.monotonic() + timeout
    while True:
        state = accounting(env)
        if summary.settled(state) or time.monotonic() > deadline:
            return state
        time.sleep(1.0)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="hyperinfer-bench-"))
    database = Database(
        sqlite_path=None if args.database_url else workdir / "bench.sqlite3",
        database_url=args.database_url,
        redis_url=args.redis_url,
    )
    processes = Processes()
    launcher = Launcher(args, workdir, processes, database)
    last_piece = f"tok{args.tokens - 1} ".encode()  # the mock's last content delta: in every whole answer
    machine = report.machine()
    log(report.machine_text(machine))
    try:
        database.validate()
        background = [background_load()]
        targets, env = launcher.setup()
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            if args.soak:
                soaked = runner.run(run_soak(args, targets[0], launcher, last_piece))
            else:
                measured = runner.run(
                    cells.drive(
                        targets,
                        modes=args.modes,
                        concurrencies=args.concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        last_piece=last_piece,
                        pgids=launcher.pgids,
                        processes=processes,
                        call_counters=launcher.call_counters,
                        writer_pgid=launcher.meter_writer_pid,
                    )
                )
        processes.check_alive()
        log("load done; checking the billing records")
        billing = _settled_accounting(env)
        processes.stop_all()
        background.append(background_load())
        data: dict[str, Any] = {
            "machine": machine,
            "settings": summary.settings_of(args, database, background, launcher.litellm_version),
        }
        if args.soak:
            summary.print_soak(args, database, machine, background, soaked, billing)
            data |= {"soak": soak.summary(soaked), "billing": billing}
        else:
            summary.print_results(
                args, database, machine, background, measured, billing, launcher.litellm_version
            )
            data |= {"cells": [report.cell_summary(cell) for cell in measured], "billing": billing}
        if args.json:
            args.json.write_text(json.dumps(data, indent=2) + "\n")
            log(f"wrote {args.json}")
        return 0
    except BenchError as exc:
        log(f"bench: {exc}")
        for child in processes.children:
            log(f"--- {child.name} log ({child.log}) ends:\n{tail(child.log, 15)}")
        return 1
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything it started")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        processes.stop_all()
        if args.keep:
            log(f"kept {workdir} and the database ({database.label})")
        else:
            try:
                database.drop()
            except BenchError as exc:
                log(f"bench: could not drop the database: {exc}")
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())

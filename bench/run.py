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
import functools
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import litellm_proxy, memory, report, soak, summary
from bench.load import MODES, CellResult, Target, preflight, run_cell
from bench.mock_upstream import new_event_loop
from bench.stack import (
    MODEL,
    UPSTREAM_KEY_ENV,
    UPSTREAM_MODEL,
    BenchError,
    Database,
    Processes,
    accounting,
    free_port,
    group_cpu_seconds,
    host_cpu_times,
    provision,
    tail,
    wait_http,
    write_catalog,
)

CREDITS_USD = 1000
# Settings of the parent shell that must not leak into the benchmark's processes.
SCRUBBED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "CATALOG_PATH",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "EMBEDDED_BEAT",
    "HYPERINFER_ENV",
    "GATEWAY_JOURNAL_DIR",
    "SECRET_KEY",
    "INTERNAL_TOKEN",
    "DEBUG",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
    "GATEWAY_METER",
    "EMAIL_BACKEND",
)


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
    args = parser.parse_args(argv)
    if args.soak is not None:
        if not 1 <= args.soak <= 100_000_000:
            parser.error("--soak must be in [1, 100000000]")
        if args.concurrency is not None and len(args.concurrency) != 1:
            parser.error("--soak takes one --concurrency")
        if args.litellm_python:
            parser.error("--soak drives the gateway alone; leave out --litellm-python")
    args.concurrency = args.concurrency or ([32] if args.soak else [1, 8, 32, 64])
    args.modes = args.modes or (["nonstream"] if args.soak else ["nonstream", "stream"])
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


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


SYSTEM, PROMPT = "You are a benchmark.", "Count upwards, one word per token."
# The gateway's path for each ingress format; the mock upstream always speaks chat completions.
GATEWAY_PATHS = {
    "chat": "/api/v1/chat/completions",
    "responses": "/api/v1/responses",
    "messages": "/api/v1/messages",
}


def _request_body(model: str, tokens: int, stream: bool, fmt: str = "chat") -> bytes:
    """The same question in each format."""
    body: dict[str, Any]
    if fmt == "responses":
        body = {"model": model, "instructions": SYSTEM, "input": PROMPT, "max_output_tokens": tokens}
    elif fmt == "messages":
        body = {"model": model, "system": SYSTEM, "messages": [{"role": "user", "content": PROMPT}]}
        body["max_tokens"] = tokens
    else:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
        body = {"model": model, "messages": messages, "max_tokens": tokens}
        if stream:
            body["stream_options"] = {"include_usage": True}
    body["stream"] = stream
    return json.dumps(body, separators=(",", ":")).encode()


def _target(name: str, url: str, key: str, model: str, tokens: int, fmt: str = "chat") -> Target:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = {s: _request_body(model, tokens, s, fmt) for s in (False, True)}
    return Target(name, url, headers, bodies, fmt)


def _child_env(database: Database, catalog: Path, upstream_key: str, meter: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED_ENV}
    env.update(
        {
            "HYPERINFER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "INTERNAL_TOKEN": secrets.token_urlsafe(48),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            # Production refuses a log-only e-mail backend; the benchmark sends no e-mail at all.
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "CATALOG_PATH": str(catalog),
            UPSTREAM_KEY_ENV: upstream_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({name: value for name, value in database.env().items() if value})
    if meter:
        env["GATEWAY_METER"] = meter
    return env


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, processes: Processes, database: Database):
        self.args, self.workdir, self.processes, self.database = args, workdir, processes, database
        self.last_piece = f"tok{args.tokens - 1} ".encode()
        self.pgids: dict[str, int] = {}  # target name → the process group serving it
        self.litellm_version: str | None = None

    def setup(self) -> tuple[list[Target], dict[str, Any]]:
        """Start everything; the targets in the order each cell drives them. A soak drives the gateway
        alone, so it starts neither the bare proxy nor LiteLLM."""
        args = self.args
        upstream_key = secrets.token_urlsafe(24)
        upstream_port = self._start_mock(upstream_key)
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        targets = []
        if not args.soak:
            targets.append(_target("direct", upstream_url, upstream_key, UPSTREAM_MODEL, args.tokens))
            targets.append(self._start_bare(upstream_url, upstream_key))
        gateway, env = self._start_gateway(upstream_port, upstream_key)
        targets.append(gateway)
        if args.litellm_python:
            targets.append(self._start_litellm(upstream_port, upstream_key))
        return targets, env

    def _start_mock(self, upstream_key: str) -> int:
        args, port = self.args, free_port()
        argv = [sys.executable, "-m", "bench.mock_upstream", "--port", str(port)]
        argv += ["--tokens", str(args.tokens), "--api-key", upstream_key]
        argv += ["--delay-ms", str(args.upstream_delay_ms)]
        _log(f"starting the mock upstream on 127.0.0.1:{port}")
        mock = self.processes.start("mock upstream", argv, os.environ.copy(), self.workdir / "upstream.log")
        self.pgids["direct"] = mock.process.pid
        wait_http(f"http://127.0.0.1:{port}/healthz", mock, self.processes)
        return port

    def _start_bare(self, upstream_url: str, upstream_key: str) -> Target:
        port = free_port()
        env = os.environ.copy() | {"BENCH_UPSTREAM_URL": upstream_url, "BENCH_UPSTREAM_KEY": upstream_key}
        argv = [sys.executable, "-m", "uvicorn", "bench.bare_proxy:app", *self._server_flags(port)]
        _log(f"starting the bare proxy on 127.0.0.1:{port} ({self.args.workers} workers)")
        bare = self.processes.start("bare proxy", argv, env, self.workdir / "bare.log")
        self.pgids["bare"] = bare.process.pid
        self._wait_for_workers(bare.process.pid)
        # The same request as direct's (the proxy adds the upstream's key itself).
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return _target("bare", url, "-", UPSTREAM_MODEL, self.args.tokens)

    def _start_gateway(self, upstream_port: int, upstream_key: str) -> tuple[Target, dict[str, str]]:
        args = self.args
        _log(f"preparing the database: {self.database.label}")
        self.database.create()
        catalog = self.workdir / "providers.yaml"
        write_catalog(catalog, upstream_port)
        env = _child_env(self.database, catalog, upstream_key, args.meter)
        # The run's own settlement journal: one left by an earlier run (killed before it settled) belongs to
        # another, dropped database; adopting it would add its settlements to this run's work.
        env["GATEWAY_JOURNAL_DIR"] = str(self.workdir / "journal")
        api_key = provision(env, catalog, self.workdir, CREDITS_USD)

        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "config.asgi:application", *self._server_flags(port)]
        _log(f"starting the gateway on 127.0.0.1:{port} ({args.workers} workers)")
        gateway = self.processes.start("gateway", argv, env, self.workdir / "gateway.log")
        self.pgids["gateway"] = gateway.process.pid
        wait_http(f"http://127.0.0.1:{port}/healthz", gateway, self.processes)
        self._wait_for_workers(gateway.process.pid)
        url = f"http://127.0.0.1:{port}{GATEWAY_PATHS[args.format]}"
        return _target("gateway", url, api_key, MODEL, args.tokens, args.format), env

    def _start_litellm(self, upstream_port: int, upstream_key: str) -> Target:
        python = self.args.litellm_python
        self.litellm_version = litellm_proxy.version(python)
        port, master_key = free_port(), f"sk-bench-{secrets.token_urlsafe(16)}"
        config = litellm_proxy.write_config(self.workdir, upstream_port)
        argv = litellm_proxy.argv(python, config, port, self.args.workers)
        env = litellm_proxy.env(SCRUBBED_ENV, upstream_key, master_key)
        _log(
            f"starting the LiteLLM proxy {self.litellm_version} on 127.0.0.1:{port} "
            f"({self.args.workers} workers)"
        )
        child = self.processes.start("litellm", argv, env, self.workdir / "litellm.log", cwd=self.workdir)
        self.pgids["litellm"] = child.process.pid
        # LiteLLM imports a lot: its start-up takes far longer than the gateway's.
        wait_http(f"http://127.0.0.1:{port}{litellm_proxy.HEALTH_PATH}", child, self.processes, timeout=180)
        self._wait_for_workers(child.process.pid, timeout=180)
        # The same request as direct's, with the proxy's own key (LiteLLM checks it, as the gateway does).
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return _target("litellm", url, master_key, UPSTREAM_MODEL, self.args.tokens)

    def _server_flags(self, port: int) -> list[str]:
        """The gateway's production server settings, shared by the bare proxy."""
        flags = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(self.args.workers)]
        return [*flags, "--loop", "uvloop", "--http", "httptools", "--no-access-log"]

    def _wait_for_workers(self, pgid: int, timeout: float = 60.0) -> None:
        """/healthz answers as soon as one worker is up: wait until the server has all its workers, and
        until they are done starting (importing Django or LiteLLM, the lifespan start-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(memory.workers(pgid)) >= self.args.workers:  # the group leader is the supervisor
                _wait_quiet(pgid, deadline)
                return
            self.processes.check_alive()
            time.sleep(0.2)
        _log(f"warning: fewer than {self.args.workers} workers in group {pgid} after {timeout:.0f}s")

    async def run_soak(self, target: Target) -> soak.SoakResult:
        """Exactly --soak requests to the gateway, its workers' memory sampled as they go."""
        args, pgid = self.args, self.pgids["gateway"]
        _log(f"soak: {args.soak:,} requests, {args.concurrency[0]} clients, {', '.join(args.modes)}")
        return await soak.drive(
            target,
            supervisor=pgid,  # the group's leader is uvicorn's supervisor
            pgid=pgid,
            streams=[MODES[mode] for mode in args.modes],
            concurrency=args.concurrency[0],
            total=args.soak,
            last_piece=self.last_piece,
            log=_log,
        )

    async def drive(self, targets: list[Target]) -> list[CellResult]:
        """Each cell runs direct, bare proxy, gateway (and LiteLLM) in turn, so they share the machine's
        state."""
        args = self.args
        for mode in args.modes:
            for target in targets:
                problem = await preflight(target, MODES[mode], self.last_piece)
                if problem:
                    raise BenchError(
                        f"{target.name} failed a single {mode} request before the load: {problem}"
                    )
        cells: list[CellResult] = []
        for mode in args.modes:
            for concurrency in args.concurrency:
                for target in targets:
                    pgid = self.pgids.get(target.name)
                    self.processes.check_alive()
                    cell = await run_cell(
                        target,
                        stream=MODES[mode],
                        concurrency=concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        last_piece=self.last_piece,
                        cpu_probe=None if pgid is None else functools.partial(group_cpu_seconds, pgid),
                        host_probe=host_cpu_times,
                    )
                    cells.append(cell)
                    errors = f", {cell.error_count} errors" if cell.error_count else ""
                    _log(f"  {mode:9} c={concurrency:<4} {target.name:7} {cell.rps:9,.1f} req/s{errors}")
        return cells


def background_load(seconds: float = 3.0) -> float | None:
    """Share of the machine's CPU busy while the benchmark runs nothing: other tenants of the machine."""
    before = host_cpu_times()
    time.sleep(seconds)
    after = host_cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy = (after[0] - before[0]) / (after[1] - before[1])
    _log(f"machine CPU busy with other processes: {busy * 100:.0f}%")
    if busy > 0.10:
        _log(
            "warning: the machine is not idle; the gateway and the mock will get less CPU than on a quiet one"
        )
    return busy


def _wait_quiet(pgid: int, deadline: float, busy: float = 0.1, step: float = 0.5) -> None:
    """Wait (at least one step) until the group uses less than `busy` of a core: its start-up is over."""
    before = group_cpu_seconds(pgid)
    while True:
        time.sleep(step)
        after = group_cpu_seconds(pgid)
        if before is None or after is None or after - before < busy * step or time.monotonic() > deadline:
            return
        before = after


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
    bench = Bench(args, workdir, processes, database)
    machine = report.machine()
    _log(report.machine_text(machine))
    try:
        database.validate()
        background = [background_load()]
        targets, env = bench.setup()
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            if args.soak:
                soaked = runner.run(bench.run_soak(targets[0]))
            else:
                cells = runner.run(bench.drive(targets))
        processes.check_alive()
        _log("load done; checking the billing records")
        billing = _settled_accounting(env)
        processes.stop_all()
        background.append(background_load())
        data: dict[str, Any] = {
            "machine": machine,
            "settings": summary.settings_of(args, database, background, bench.litellm_version),
        }
        if args.soak:
            summary.print_soak(args, database, machine, background, soaked, billing)
            data |= {"soak": soak.summary(soaked), "billing": billing}
        else:
            summary.print_results(args, database, machine, background, cells, billing, bench.litellm_version)
            data |= {"cells": [report.cell_summary(cell) for cell in cells], "billing": billing}
        if args.json:
            args.json.write_text(json.dumps(data, indent=2) + "\n")
            _log(f"wrote {args.json}")
        return 0
    except BenchError as exc:
        _log(f"bench: {exc}")
        for child in processes.children:
            _log(f"--- {child.name} log ({child.log}) ends:\n{tail(child.log, 15)}")
        return 1
    except KeyboardInterrupt:
        _log("bench: interrupted; stopping everything it started")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        processes.stop_all()
        if args.keep:
            _log(f"kept {workdir} and the database ({database.label})")
        else:
            try:
                database.drop()
            except BenchError as exc:
                _log(f"bench: could not drop the database: {exc}")
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())

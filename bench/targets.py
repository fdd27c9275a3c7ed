"""Starting what a run drives: the mock upstream, the bare proxy, the gateway (with its throwaway database,
its catalog and a key with credits) and LiteLLM's proxy, each in its own process group, and the request each
target gets.

The gateway and the bare proxy run with the gateway's production server settings (uvicorn, N workers,
uvloop, httptools, no access log). Each start returns once its server is ready: it answers its health check,
or (a uvicorn server) it has all its workers and they are done starting, or both.
"""

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench import call_count, litellm_proxy, memory
from bench.call_count import CallCounter
from bench.cpu_time import group_cpu_seconds
from bench.load import Target
from bench.stack import (
    GATEWAY_HTTP,
    GATEWAY_LOOP,
    MODEL,
    UPSTREAM_KEY_ENV,
    UPSTREAM_MODEL,
    Database,
    Processes,
    free_port,
    log,
    provision,
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
    "METER_WRITER",
    "EMAIL_BACKEND",
)


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


def meter_in_effect(meter: str | None, database: Database) -> str:
    """--meter, or the settings' default: the Redis meter with PostgreSQL and Redis, else the SQL meter."""
    return meter or ("redis" if database.database_url and database.redis_url else "sql")


class Launcher:
    """Starts the targets; keeps each one's process group (for its CPU time) and LiteLLM's version."""

    def __init__(self, args: argparse.Namespace, workdir: Path, processes: Processes, database: Database):
        self.args, self.workdir, self.processes, self.database = args, workdir, processes, database
        self.pgids: dict[str, tuple[int, ...]] = {}  # target name → the process groups serving it
        self.litellm_version: str | None = None
        self.meter_writer_pid: int | None = None  # the gateway's `manage.py meter_writer` (Redis meter)
        self.call_counters: dict[str, CallCounter] = {}  # with --count-calls: the bare proxy's, the gateway's

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
        # "--api-key=…": a generated key may begin with "-", which argparse would read as an option.
        argv += ["--tokens", str(args.tokens), f"--api-key={upstream_key}"]
        argv += ["--delay-ms", str(args.upstream_delay_ms), "--interval-ms", str(args.token_interval_ms)]
        log(f"starting the mock upstream on 127.0.0.1:{port}")
        mock = self.processes.start("mock upstream", argv, os.environ.copy(), self.workdir / "upstream.log")
        self.pgids["direct"] = (mock.process.pid,)
        wait_http(f"http://127.0.0.1:{port}/healthz", mock, self.processes)
        return port

    def _start_bare(self, upstream_url: str, upstream_key: str) -> Target:
        """The bare proxy, or with --floor the metered floor in its place (bench/metered_floor.py)."""
        port = free_port()
        env = os.environ.copy() | {"BENCH_UPSTREAM_URL": upstream_url, "BENCH_UPSTREAM_KEY": upstream_key}
        name, app, title = "bare", "bench.bare_proxy:app", "the bare proxy"
        if self.args.floor:
            name, app, title = "floor", "bench.metered_floor:app", "the metered floor"
            env["BENCH_FLOOR_REDIS"] = self.args.redis_url
        flags = self._server_flags(port, "httptools", self._bare_loop())
        argv = [sys.executable, "-m", "uvicorn", app, *flags]
        log(f"starting {title} on 127.0.0.1:{port} ({self.args.workers} workers)")
        bare = self.processes.start(title, argv, env | self._counting(name), self.workdir / f"{name}.log")
        self.pgids[name] = (bare.process.pid,)
        self._count_calls_of(name, bare.process.pid)
        self._wait_for_workers(bare.process.pid)
        # The same request as direct's (the proxy adds the upstream's key itself).
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return _target(name, url, "-", UPSTREAM_MODEL, self.args.tokens)

    def _start_gateway(self, upstream_port: int, upstream_key: str) -> tuple[Target, dict[str, str]]:
        args = self.args
        log(f"preparing the database: {self.database.label}")
        self.database.create()
        catalog = self.workdir / "providers.yaml"
        write_catalog(catalog, upstream_port)
        env = _child_env(self.database, catalog, upstream_key, args.meter)
        # The run's own settlement journal: one left by an earlier run (killed before it settled) belongs to
        # another, dropped database; adopting it would add its settlements to this run's work.
        env["GATEWAY_JOURNAL_DIR"] = str(self.workdir / "journal")
        api_key = provision(env, catalog, self.workdir, CREDITS_USD)

        writer = None
        if meter_in_effect(args.meter, self.database) == "redis":
            # As production runs the Redis meter: its records written by a process of their own (ADR 0022),
            # whose CPU time counts as the gateway's.
            env["METER_WRITER"] = "process"
            log("starting the meter writer (manage.py meter_writer)")
            argv = [sys.executable, "manage.py", "meter_writer"]
            writer = self.processes.start("meter writer", argv, env, self.workdir / "meter_writer.log")
        port = free_port()
        flags = self._server_flags(port, GATEWAY_HTTP, GATEWAY_LOOP)
        argv = [sys.executable, "-m", "uvicorn", "config.asgi:application", *flags]
        log(f"starting the gateway on 127.0.0.1:{port} ({args.workers} workers)")
        gateway = self.processes.start(
            "gateway", argv, env | self._counting("gateway"), self.workdir / "gateway.log"
        )
        self._count_calls_of("gateway", gateway.process.pid)
        self.pgids["gateway"] = (gateway.process.pid,) + ((writer.process.pid,) if writer else ())
        self.meter_writer_pid = writer.process.pid if writer else None
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
        log(
            f"starting the LiteLLM proxy {self.litellm_version} on 127.0.0.1:{port} "
            f"({self.args.workers} workers)"
        )
        child = self.processes.start("litellm", argv, env, self.workdir / "litellm.log", cwd=self.workdir)
        self.pgids["litellm"] = (child.process.pid,)
        # LiteLLM imports a lot: its start-up takes far longer than the gateway's.
        wait_http(f"http://127.0.0.1:{port}{litellm_proxy.HEALTH_PATH}", child, self.processes, timeout=180)
        self._wait_for_workers(child.process.pid, timeout=180)
        # The same request as direct's, with the proxy's own key (LiteLLM checks it, as the gateway does).
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return _target("litellm", url, master_key, UPSTREAM_MODEL, self.args.tokens)

    def _counting(self, name: str) -> dict[str, str]:
        """With --count-calls, what a measured server's environment gains (bench/call_count.py)."""
        if not self.args.count_calls:
            return {}
        (self.workdir / f"calls-{name}").mkdir(exist_ok=True)
        return call_count.server_env(self.workdir / f"calls-{name}")

    def _count_calls_of(self, name: str, supervisor: int) -> None:
        if self.args.count_calls:
            self.call_counters[name] = CallCounter(supervisor, self.workdir / f"calls-{name}")

    def _bare_loop(self) -> str:
        """uvicorn's uvloop (issue 18's bare proxy), or with --bare-balanced the gateway's."""
        return GATEWAY_LOOP if self.args.bare_balanced else "uvloop"

    def _server_flags(self, port: int, http: str, loop: str) -> list[str]:
        """The gateway's production server settings, shared by the bare proxy but for the HTTP protocol and
        the loop: the bare proxy keeps uvicorn's own (issue 18's definition); the gateway's holds each
        response's head for its body's write (core/http_server.py), and its workers share the connections
        out evenly (core/accept_balance.py)."""
        flags = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(self.args.workers)]
        return [*flags, "--loop", loop, "--http", http, "--no-access-log", "--no-server-header"]

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
        log(f"warning: fewer than {self.args.workers} workers in group {pgid} after {timeout:.0f}s")


def _wait_quiet(pgid: int, deadline: float, busy: float = 0.1, step: float = 0.5) -> None:
    """Wait (at least one step) until the group uses less than `busy` of a core: its start-up is over."""
    before = group_cpu_seconds(pgid)
    while True:
        time.sleep(step)
        after = group_cpu_seconds(pgid)
        if before is None or after is None or after - before < busy * step or time.monotonic() > deadline:
            return
        before = after

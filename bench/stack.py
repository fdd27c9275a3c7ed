"""What the benchmark runs against: child processes, a throwaway database, the catalog, a key with credits.

Every child is started in its own session (process group), so that stopping it also stops whatever it
started (uvicorn's worker processes), and a Ctrl-C in the terminal reaches only the benchmark, which then
stops its children in order.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"
MODEL = "bench/echo"
UPSTREAM_MODEL = "bench-echo"
# The gateway's uvicorn protocol in production (README): httptools', a response's head sent with its body.
GATEWAY_HTTP = "core.http_server:HttpToolsProtocol"
# Its event loop in production: uvloop, its workers accepting connections least-busy first (ADR 0023).
GATEWAY_LOOP = "core.accept_balance:new_event_loop"
OWNER_EMAIL = "operator@hyperinfer.local"  # created by `manage.py demo_setup`


class BenchError(Exception):
    """A setup step failed; the message says which and why."""


def log(message: str) -> None:
    """Progress, warnings and failures: on stderr, so that stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Processes:
    """The children we started, stopped in reverse order by their own process group id."""

    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> Child:
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            _stop_group(child.process)

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise BenchError(
                    f"{child.name} exited with status {child.process.returncode}; its log ends:\n"
                    f"{tail(child.log)}"
                )


def _stop_group(process: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    pgid = process.pid  # start_new_session: the child leads its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no straggler of its group survives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return


def wait_http(url: str, child: Child, processes: Processes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(
        f"{child.name} did not answer {url} within {timeout:.0f}s ({last}); log:\n{tail(child.log)}"
    )


# --- Database -------------------------------------------------------------------------------------
@dataclass
class Database:
    """SQLite (a temp file) by default; a fresh PostgreSQL database and a flushed Redis database if given."""

    sqlite_path: Path | None = None
    database_url: str = ""
    redis_url: str = ""
    touched: bool = False  # create() ran, so drop() has something to clean

    @property
    def label(self) -> str:
        if self.database_url:
            db = "PostgreSQL " + _redacted(self.database_url)
        else:
            db = f"SQLite {self.sqlite_path}"
        cache = f"Redis {_redacted(self.redis_url)}" if self.redis_url else "in-process cache"
        return f"{db}; {cache}"

    def env(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}
        if self.sqlite_path is not None:
            env["SQLITE_PATH"] = str(self.sqlite_path)
        return env

    def validate(self) -> None:
        """Refuse, before anything starts, a database that does not look like a throwaway one."""
        if self.database_url:
            _postgres_name(self.database_url)
        if self.redis_url:
            _redis_db(self.redis_url)

    def create(self) -> None:
        self.touched = True
        if self.database_url:
            _postgres_recreate(self.database_url)
        if self.redis_url:
            _redis_flush(self.redis_url)

    def drop(self) -> None:
        if not self.touched:
            return
        if self.database_url:
            _postgres_drop(self.database_url)
        if self.redis_url:
            _redis_flush(self.redis_url)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _postgres_name(url: str) -> tuple[str, str]:
    """(database name, URL of the maintenance database `postgres` on the same server)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise BenchError(f"--database-url {_redacted(url)}: name a database, e.g. …/hyperinfer_bench")
    if "bench" not in name:
        # It is dropped and re-created: refuse anything that does not look like a throwaway database.
        raise BenchError(
            f"--database-url names {name!r}: the benchmark drops and re-creates it, so its name must "
            "contain 'bench' (e.g. hyperinfer_bench)"
        )
    return name, urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))


def _postgres_execute(url: str, statements: list[str]) -> None:
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - psycopg is a project dependency
        raise BenchError("psycopg is needed for --database-url") from exc
    name, admin_url = _postgres_name(url)
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            for statement in statements:
                conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL ({_redacted(admin_url)}): {exc}") from exc


def _postgres_recreate(url: str) -> None:
    _postgres_execute(url, ["DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}"])


def _postgres_drop(url: str) -> None:
    _postgres_execute(url, ["DROP DATABASE IF EXISTS {} WITH (FORCE)"])


def _redis_db(url: str) -> str:
    db = urlsplit(url).path.lstrip("/") or "0"
    if db == "0":
        raise BenchError(
            f"--redis-url {_redacted(url)}: the benchmark flushes the Redis database it is given; "
            "name a dedicated one other than 0, e.g. redis://127.0.0.1:6379/3"
        )
    return db


def _redis_flush(url: str) -> None:
    import redis

    _redis_db(url)
    try:
        redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Redis ({_redacted(url)}): {exc}") from exc


# --- manage.py ------------------------------------------------------------------------------------
def manage(env: dict[str, str], *args: str, timeout: float = 300.0) -> str:
    argv = [sys.executable, "manage.py", *args]
    try:
        done = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"manage.py {' '.join(args)} took longer than {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(
            f"manage.py {' '.join(args)} failed with status {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done.stdout


CATALOG = """\
# Written by bench/run.py: one model whose only route is the benchmark's mock upstream.
creators:
  - slug: bench
    name: Benchmark
providers:
  - slug: bench-upstream
    name: Benchmark mock upstream
    kind: openai_compatible
    base_url: http://127.0.0.1:{port}/v1
    credentials_env: {key_env}
    timeout_seconds: 60
models:
  - slug: {model}
    name: Benchmark echo
    description: A fixed answer from the benchmark's mock upstream.
    context_length: 8192
    max_output_tokens: 1024
    pricing:
      prompt: 0.15
      completion: 0.6
    features: [streaming]
    routes:
      - provider: bench-upstream
        upstream_model_id: {upstream_model}
"""


def write_catalog(path: Path, upstream_port: int) -> None:
    path.write_text(
        CATALOG.format(
            port=upstream_port, key_env=UPSTREAM_KEY_ENV, model=MODEL, upstream_model=UPSTREAM_MODEL
        )
    )


def provision(env: dict[str, str], catalog: Path, workdir: Path, credits_usd: int) -> str:
    """Migrate, load the catalog, create the workspace with credits, and return a new API key."""
    manage(env, "migrate", "--noinput")
    manage(env, "catalog_load", "--path", str(catalog))
    manage(env, "demo_setup", "--credentials-file", str(workdir / "demo-login.txt"))
    manage(
        env, "grantcredits", "--workspace", OWNER_EMAIL, "--usd", str(credits_usd), "--reason", "benchmark"
    )
    key = manage(env, "createapikey", "--workspace", OWNER_EMAIL, "--name", "bench").strip().splitlines()
    if not key:
        raise BenchError("manage.py createapikey printed no key")
    return key[-1].strip()


ACCOUNTING = """
import json
from django.conf import settings
from django.db.models import Count, Sum
from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry, Reservation
from billing.services import ledger_sum
from gateway.models import Generation
from console.models import User
ws = User.objects.get(email={email!r}).workspaces.order_by("-is_personal", "created_at").first()
account = CreditAccount.objects.get(workspace=ws)
gens = Generation.objects.filter(workspace=ws)
_, fields = mirror.with_pending(mirror.workspace_hash(ws.pk), lambda: None)
unflushed, held_in_redis = mirror.account_pending(fields)
usage = LedgerEntry.objects.filter(workspace=ws, kind=EntryKind.USAGE).aggregate(s=Sum("amount_micro_usd"))
usage = usage["s"]
print(json.dumps({{
    "meter": settings.GATEWAY_METER,
    "generations": dict(gens.values_list("status").annotate(n=Count("id"))),
    "generation_cost_micro_usd": gens.aggregate(s=Sum("cost_micro_usd"))["s"] or 0,
    "usage_debits_micro_usd": -(usage or 0),
    "reservations": dict(
        Reservation.objects.filter(workspace=ws).values_list("status").annotate(n=Count("id"))
    ),
    "balance_micro_usd": account.balance_micro_usd,
    "ledger_sum_micro_usd": ledger_sum(workspace_id=ws.pk),
    "reserved_micro_usd": account.reserved_micro_usd + held_in_redis,
    "unflushed_micro_usd": unflushed,
    "queued": mirror.queued_records() if mirror.mirror_enabled() else 0,
}}))
"""


def accounting(env: dict[str, str]) -> dict[str, Any]:
    """What was billed: generation records, ledger, reservations (SQL rows or Redis holds), balance."""
    out = manage(env, "shell", "-c", ACCOUNTING.format(email=OWNER_EMAIL))
    return json.loads(out.strip().splitlines()[-1])

"""Gateway deployments as production runs them, for the scale-out tests: each its own uvicorn process group
(`--workers 2 --loop core.accept_balance:new_event_loop --http core.http_server:HttpToolsProtocol`,
HYPERINFER_ENV=production, and `manage.py meter_writer` beside it) on its own loopback port, as separate hosts
would be, all on the test database and the Redis the test names."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
# The parent's settings that must not reach a deployment: it gets its own (bench/targets.py scrubs the same).
SCRUBBED_ENV = (
    "DATABASE_URL", "REDIS_URL", "METER_REDIS_URL", "METER_REDIS_CLUSTER", "METER_REDIS_SHARDS",
    "SQLITE_PATH", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "EMBEDDED_BEAT", "HYPERINFER_ENV",
    "SECRET_KEY", "INTERNAL_TOKEN", "DEBUG", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE", "GATEWAY_METER",
    "EMAIL_BACKEND", "GATEWAY_JOURNAL_DIR", "METER_WRITER",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_this_run() -> str:
    """The URL of the database pytest-django made for this run (the test process's own connection)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def production_env(extra: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED_ENV}
    env.update(
        {
            "HYPERINFER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "INTERNAL_TOKEN": secrets.token_urlsafe(48),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            # Production refuses a log-only e-mail backend; these deployments send no e-mail.
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMBEDDED_BEAT": "false",
            "DATABASE_URL": database_url_of_this_run(),
            "GATEWAY_METER": "redis",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def _started(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process of the deployment, in a process group of its own, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Deployment:
    """One gateway deployment: uvicorn's supervisor and its workers, in a process group of their own, and
    with `meter_writer` (as production runs the Redis meter, ADR 0022) `manage.py meter_writer` in another."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, *, meter_writer: bool = True) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.journal = workdir / f"{name}-journal"  # each deployment's host has its own disk
        command = [
            sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(WORKERS),
            "--loop", "core.accept_balance:new_event_loop", "--http", "core.http_server:HttpToolsProtocol",
            "--no-access-log", "--no-server-header", "--log-level", "warning",
        ]  # fmt: skip
        writes = "process" if meter_writer else "server"
        env = {**env, "GATEWAY_JOURNAL_DIR": str(self.journal), "METER_WRITER": writes}
        self.process = _started(command, env, self.log)
        self.writer = None
        if meter_writer:
            writer_log = workdir / f"{name}-meter-writer.log"
            self.writer = _started([sys.executable, "manage.py", "meter_writer"], env, writer_log)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /healthz answers and uvicorn's supervisor has started all its workers."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"{self.name} exited; its log ends:\n{self.log_tail()}"
            with contextlib.suppress(httpx.TransportError):
                if (
                    httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
                    and self._workers() >= WORKERS
                ):
                    return
            assert time.monotonic() < deadline, f"{self.name} did not start; its log ends:\n{self.log_tail()}"
            time.sleep(0.1)

    def _workers(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return len(children.read_text().split())
        except OSError:
            return WORKERS  # no /proc: trust /healthz

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the group (uvicorn drains its workers; the meter writer, or the workers' own flushers,
        drain the queue), then KILL."""
        for process in [self.process] + ([self.writer] if self.writer is not None else []):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(15)
                    break
                except subprocess.TimeoutExpired:
                    continue


@contextlib.contextmanager
def deployments(count: int, env: dict[str, str], workdir: Path, *, meter_writer: bool = True):
    """`count` deployments started at once, ready, and stopped (each its whole group) afterwards."""
    started = [Deployment(f"deployment-{n}", env, workdir, meter_writer=meter_writer) for n in range(count)]
    try:
        for deployment in started:
            deployment.wait_ready()
        yield started
    finally:
        for deployment in started:
            deployment.stop()

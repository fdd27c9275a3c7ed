"""A PostgreSQL outage under load: a real gateway process reaches PostgreSQL through a TCP proxy the test
cuts for a few seconds (every connection dropped, new ones refused). The gateway keeps answering from its
caches and the Redis meter, and once PostgreSQL is back every answer is billed once."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from django.db import connection

from billing.models import CreditAccount
from tests.gateway.conftest import settled_generation
from tests.gateway.test_settlement_faults import GatewayProcess, assert_billed_once, call, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

REQUESTS = 240
OUTAGE_SECONDS = 4.0


class CuttableProxy:
    """A TCP proxy on loopback to PostgreSQL, in a thread of its own; `cut()` drops every connection and
    refuses new ones (the port closed, as a stopped server's), `restore()` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.restore()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.links -= {writer, up_writer}

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()

    def restore(self) -> None:
        self._run(self._listen())

    def cut(self) -> None:
        self._run(self._close())

    def stop(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)


class FreezableProxy(CuttableProxy):
    """`freeze()` stops passing bytes either way and holds new connections unanswered, as a partition or a
    stuck server does (the proxy's kernel still acknowledges what is sent: no TCP timeout fires), until
    `thaw()`."""

    frozen = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                while self.frozen:
                    await asyncio.sleep(0.02)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.links.add(writer)  # held: `cut()` (and `stop()`) drop it too
        while self.frozen and not writer.is_closing():
            await asyncio.sleep(0.02)
        self.links.discard(writer)
        if not writer.is_closing():
            await super()._link(reader, writer)

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False


def postgresql_through_a_proxy() -> tuple[FreezableProxy, str]:
    """A FreezableProxy in front of the test database, and the DATABASE_URL that goes through it."""
    database = connection.settings_dict
    proxy = FreezableProxy((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    return proxy, f"postgres://{database['USER']}@127.0.0.1:{proxy.port}/{database['NAME']}"


async def load_with_an_outage(
    url: str, key: str, begin: Callable[[], None], end: Callable[[], None]
) -> tuple[list, int, tuple]:
    """REQUESTS requests from 16 clients; after 60 answers PostgreSQL is away (`begin()`) for OUTAGE_SECONDS
    (`end()`). Returns the answers, how many came while it was away, and /readyz's answer halfway through
    (status, its PostgreSQL check, seconds taken)."""
    answers: list[tuple[int, str, str]] = []
    during: list[int] = []
    readiness: list[tuple[int, str, float]] = []
    sent = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < REQUESTS:
            sent += 1
            answers.append(await call(client, key, stream=sent % 2 == 0))

    async def outage(client: httpx.AsyncClient) -> None:
        while len(answers) < 60:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(begin)
        before = len(answers)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        asked = time.monotonic()
        ready = await client.get("/readyz")
        readiness.append((ready.status_code, ready.json()["checks"]["postgres"], time.monotonic() - asked))
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        during.append(len(answers) - before)
        await asyncio.to_thread(end)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(outage(client), *(client_loop(client) for _ in range(16)))
    return answers, during[0], readiness[0]


@pytest.mark.parametrize("kind", ["cut off", "not answering"])
def test_every_request_is_answered_and_billed_once_through_a_postgresql_outage(
    kind, funded_key, shipped_catalog, tmp_path, settings
):
    """`cut off`: every connection dropped, new ones refused (a stopped server). `not answering`: connections
    held open and nothing coming back (a partition, a stuck server), which no load ever fails on by itself."""
    settings.GATEWAY_METER = "redis"
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    proxy, through_proxy = postgresql_through_a_proxy()
    begin, end = (proxy.cut, proxy.restore) if kind == "cut off" else (proxy.freeze, proxy.thaw)
    # The gateway as production runs it (uvicorn, the Redis meter, its writer in the process), on the test
    # database through the proxy; DB_POOL_TIMEOUT: how long the load that finds the outage waits.
    gateway = GatewayProcess(tmp_path / "journal", DATABASE_URL=through_proxy, DB_POOL_TIMEOUT="3")
    try:
        answers, answered_during_the_outage, readiness = asyncio.run(
            load_with_an_outage(gateway.url, key, begin, end)
        )
        refused = [body for status, _, body in answers if status != 200]
        assert refused == [] and len(answers) == REQUESTS
        for _, request_id, _ in answers:
            settled_generation(request_id, timeout=30)
    finally:
        gateway.stop()
        proxy.stop()

    # The gateway went on answering while PostgreSQL was away (the model takes ~0.35 s an answer, so 16
    # clients get ~180 in OUTAGE_SECONDS), and its readiness said so within a second, not after the pool's
    # timeout.
    print(kind, "answered during the outage:", answered_during_the_outage, "readiness:", readiness)
    assert answered_during_the_outage >= 100
    status, postgres_check, seconds = readiness
    assert (status, postgres_check) == (503, "down") and seconds < 1.5
    assert_billed_once(workspace, [request_id for _, request_id, _ in answers], balance_before=before)


def test_a_new_connection_to_a_postgresql_that_never_answers_gives_up_after_its_connect_timeout():
    """libpq's connect_timeout (DB_CONNECT_TIMEOUT): without it, connecting to a server that accepts and
    never answers hangs the thread for good (the pool's background connects included)."""
    proxy, through_proxy = postgresql_through_a_proxy()
    proxy.freeze()
    script = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "try:\n    connection.ensure_connection()\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": through_proxy,
        "DB_POOL": "false",
        "DB_CONNECT_TIMEOUT": "2",  # libpq's least
    }
    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60
        )
        took = time.monotonic() - started
    finally:
        proxy.stop()
    assert result.stdout.strip() == "OperationalError", result.stderr[-2000:]
    assert took < 8


def test_an_open_connection_is_dropped_once_what_it_sent_goes_unacknowledged():
    """A partition seen from an open connection: TCP's own retries would take ~15 minutes to give up on it;
    tcp_user_timeout (DB_TCP_USER_TIMEOUT_MS) and keepalives are set on the connection's socket."""
    connection.ensure_connection()
    with socket.socket(fileno=connection.connection.pgconn.socket) as sock:
        try:
            user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        finally:
            sock.detach()  # libpq's socket: not closed here
    assert (user_timeout, keepalive, idle) == (10_000, 1, 10)


async def answered(url: str, key: str, count: int) -> list[str]:
    """`count` chat completions, 8 at a time, half of them streamed; the request ids of those answered. The
    others may only be the requests that were loading from PostgreSQL themselves as it stopped answering:
    refused (`internal_error`) after in_thread_within's bound, where they waited for as long as it lasted."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        answers = []
        for start in range(0, count, 8):
            batch = (call(client, key, stream=n % 2 == 0) for n in range(start, start + 8))
            answers += await asyncio.gather(*batch)
    refused = [status for status, _, _ in answers if status != 200]
    assert set(refused) <= {500} and len(refused) <= 2
    return [request_id for status, request_id, _ in answers if status == 200]


def test_a_gateway_stopped_while_postgresql_does_not_answer_exits_and_the_next_bills_everything(
    funded_key, shipped_catalog, tmp_path, settings
):
    """A rolling restart during a partition: the stopping process's writer is stuck mid-batch and its keeper
    cannot confirm. It stops within its bounds all the same (the keeper's pass, the writer's
    FINAL_DRAIN_SECONDS, then EXIT_GRACE_SECONDS for threads stuck in I/O), where it used to wait for
    PostgreSQL for good; the batch goes back to its queue and the journal stays on disk, so the process
    after it bills every answer once PostgreSQL answers."""
    settings.GATEWAY_METER = "redis"
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    proxy, through_proxy = postgresql_through_a_proxy()
    first = GatewayProcess(tmp_path / "journal", DATABASE_URL=through_proxy)
    try:
        request_ids = asyncio.run(answered(first.url, key, 16))
        proxy.freeze()
        request_ids += asyncio.run(answered(first.url, key, 16))  # from memory: their bills wait in Redis
        time.sleep(1)  # the writer has claimed them and is stuck writing
        stopping = time.monotonic()
        first.process.terminate()
        first.process.wait(60)
        took = time.monotonic() - stopping
        proxy.thaw()

        second = GatewayProcess(tmp_path / "journal", DATABASE_URL=through_proxy)
        try:
            for request_id in request_ids:
                settled_generation(request_id, timeout=30)
        finally:
            second.stop()
    finally:
        if first.process.poll() is None:  # failed before it was stopped: not left to eat the queue
            first.kill()
        proxy.stop()

    assert took < 25
    assert_billed_once(workspace, request_ids, balance_before=before)


def test_a_known_key_whose_own_load_meets_a_silent_postgresql_is_answered_from_its_last_load(
    funded_key, shipped_catalog, tmp_path, settings
):
    """A key not used for longer than its cache lasts (so nothing loaded it ahead), used again just as
    PostgreSQL stops answering: the request loads it itself, and that load never comes back. It is answered
    from the key's last load once the load has been out long enough to count as an outage (ADR 0025), where
    it was refused with `internal_error` after in_thread_within's bound; and it is billed once PostgreSQL
    answers again."""
    settings.GATEWAY_METER = "redis"
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    proxy, through_proxy = postgresql_through_a_proxy()
    gateway = GatewayProcess(tmp_path / "journal", DATABASE_URL=through_proxy)

    async def ask() -> tuple[int, str, float]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            started = time.monotonic()
            status, request_id, _ = await call(client, key, stream=False)
            return status, request_id, time.monotonic() - started

    try:
        first = asyncio.run(ask())
        time.sleep(2)  # past the key's cache (1 s), with no request to load it ahead
        proxy.freeze()
        second = asyncio.run(ask())
        proxy.thaw()
        for _, request_id, _ in (first, second):
            settled_generation(request_id, timeout=30)
    finally:
        gateway.stop()
        proxy.stop()
    assert first[0] == 200
    status, request_id, took = second
    assert status == 200 and took < 10
    assert_billed_once(workspace, [first[1], request_id], balance_before=before)

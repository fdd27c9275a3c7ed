"""A PostgreSQL outage under load: a real gateway process reaches PostgreSQL through a TCP proxy the test
cuts for a few seconds (every connection dropped, new ones refused). The gateway keeps answering from its
caches and the Redis meter, and once PostgreSQL is back every answer is billed once."""

import asyncio
import contextlib
import threading
import time

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


async def load_with_an_outage(url: str, key: str, proxy: CuttableProxy) -> tuple[list, int, tuple]:
    """REQUESTS requests from 16 clients; after 60 answers PostgreSQL is cut off for OUTAGE_SECONDS. Returns
    the answers, how many came while it was cut off, and /readyz's answer halfway through (status, its
    PostgreSQL check, seconds taken)."""
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
        await asyncio.to_thread(proxy.cut)
        before = len(answers)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        asked = time.monotonic()
        ready = await client.get("/readyz")
        readiness.append((ready.status_code, ready.json()["checks"]["postgres"], time.monotonic() - asked))
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        during.append(len(answers) - before)
        await asyncio.to_thread(proxy.restore)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(outage(client), *(client_loop(client) for _ in range(16)))
    return answers, during[0], readiness[0]


def test_every_request_is_answered_and_billed_once_through_a_postgresql_outage(
    funded_key, shipped_catalog, tmp_path, settings
):
    settings.GATEWAY_METER = "redis"
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    database = connection.settings_dict
    proxy = CuttableProxy((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    # The gateway as production runs it (uvicorn, the Redis meter, its writer in the process), on the test
    # database through the proxy; DB_POOL_TIMEOUT: how long the load that finds the outage waits.
    gateway = GatewayProcess(
        tmp_path / "journal",
        DATABASE_URL=f"postgres://{database['USER']}@127.0.0.1:{proxy.port}/{database['NAME']}",
        DB_POOL_TIMEOUT="3",
    )
    try:
        answers, answered_during_the_outage, readiness = asyncio.run(
            load_with_an_outage(gateway.url, key, proxy)
        )
        refused = [body for status, _, body in answers if status != 200]
        assert refused == [] and len(answers) == REQUESTS
        for _, request_id, _ in answers:
            settled_generation(request_id, timeout=30)
    finally:
        gateway.stop()
        proxy.stop()

    # The gateway went on answering while PostgreSQL was away (the model takes ~0.35 s an answer), and its
    # readiness said so at once, not after the pool's timeout.
    assert answered_during_the_outage >= 40
    status, postgres_check, seconds = readiness
    assert (status, postgres_check) == (503, "down") and seconds < 1.0
    assert_billed_once(workspace, [request_id for _, request_id, _ in answers], balance_before=before)

"""No answer goes unbilled when Redis stops or a gateway process is killed (design §4.4, ADR 0010): real
Redis servers started and stopped by the test, real gateway processes, PostgreSQL."""

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry
from gateway.audit import ledger_audit
from gateway.canonical import CanonicalRequest, Message, TextBlock
from gateway.catalog_cache import catalog_cache
from gateway.metering import journal
from gateway.models import Generation
from gateway.tokens import estimate_prompt_tokens
from tests.gateway.conftest import ServerThread, settled_generation

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "hyperinfer/sandbox-pro"  # answers in ~0.35 s: first token at 150 ms, then 60 tokens/s
REQUESTS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A Redis of the test's own, without persistence (as the development machine's): a restart loses all."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
        ]
        self.process = subprocess.Popen([*command, "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self, *, kill: bool) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(10)


@pytest.fixture
def own_redis(settings, monkeypatch):
    server = RedisServer()
    server.start()
    settings.GATEWAY_METER = "redis"
    settings.REDIS_URL = server.url
    mirror.sync_client.cache_clear()
    monkeypatch.setattr(journal, "RESETTLE_SECONDS", 1.0)  # so a lost settlement is redone within the test
    yield server
    server.stop(kill=True)
    mirror.sync_client.cache_clear()


async def call(client: httpx.AsyncClient, key: str, stream: bool) -> tuple[int, str, str]:
    """(status, request id, body) of one chat completion."""
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "count the sheep"}]}
    headers = {"Authorization": f"Bearer {key}"}
    async with client.stream("POST", "/api/v1/chat/completions", json=body, headers=headers) as response:
        text = (await response.aread()).decode()
        return response.status_code, response.headers.get("x-request-id", ""), text


async def load_with_an_outage(
    url: str, key: str, redis: RedisServer, kill: bool
) -> list[tuple[int, str, str]]:
    """REQUESTS requests from 16 clients; after 40 answers Redis goes down for 3 s, then comes back empty."""
    answers: list[tuple[int, str, str]] = []
    sent = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < REQUESTS:
            sent += 1
            answer = await call(client, key, stream=sent % 2 == 0)
            answers.append(answer)
            if answer[0] != 200:
                await asyncio.sleep(0.5)  # a client backing off from a 500

    async def outage() -> None:
        while len(answers) < 40:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(redis.stop, kill=kill)
        await asyncio.sleep(3)
        await asyncio.to_thread(redis.start)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(outage(), *(client_loop(client) for _ in range(16)))
    return answers


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed -9"])
def test_every_answer_is_billed_once_through_a_redis_outage(kill, own_redis, funded_key, shipped_catalog):
    workspace, key = funded_key
    before = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    catalog_cache.invalidate()
    with ServerThread() as url:
        answers = asyncio.run(load_with_an_outage(url, key, own_redis, kill))
        answered = [request_id for status, request_id, _ in answers if status == 200]
        for request_id in answered:
            settled_generation(request_id, timeout=30)

    refused = [json.loads(body)["error"] for status, _, body in answers if status != 200]
    assert len(answers) == REQUESTS and len(answered) >= 60 and refused  # the outage did refuse some
    assert {(error["code"], error["type"]) for error in refused} == {("internal_error", "api_error")}
    assert_billed_once(workspace, answered, balance_before=before)


def assert_billed_once(workspace, request_ids: list[str], *, balance_before: int) -> None:
    """Each answered request has one generation and one usage debit of its cost, nothing else was charged,
    and the ledger audits clean."""
    generations = Generation.objects.filter(workspace=workspace)
    assert sorted(generations.values_list("request_id", flat=True)) == sorted(request_ids)
    costs = dict(generations.values_list("request_id", "cost_micro_usd"))
    debits = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    assert sorted(debits.values_list("reference", "amount_micro_usd")) == sorted(
        (request_id, -cost) for request_id, cost in costs.items()
    )
    after = CreditAccount.objects.get(workspace=workspace).balance_micro_usd
    assert balance_before - after == sum(costs.values()) > 0
    assert ledger_audit() == []


class GatewayProcess:
    """The gateway as production runs it: its own uvicorn process on the test database."""

    def __init__(self, journal_dir: Path, *, open_files: int | None = None, **environment: str) -> None:
        """`environment`: settings of this process's own (PostgreSQL through another port, say);
        `open_files`: the process starts with this soft limit on open files (its hard limit kept)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        database = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "GATEWAY_METER": "redis",
            "GATEWAY_JOURNAL_DIR": str(journal_dir),
            **environment,
        }
        command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(self.port)]

        def limit_open_files() -> None:
            if open_files is not None:
                resource.setrlimit(
                    resource.RLIMIT_NOFILE, (open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
                )

        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"], cwd=ROOT, env=env, preexec_fn=limit_open_files
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway process did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        """As production stops it: SIGTERM, and what it has in flight settled."""
        self.process.terminate()
        self.process.wait(30)


def content_deltas(stream: bytes) -> int:
    """How many content deltas a chat completions stream carried."""
    count = 0
    for line in stream.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = json.loads(line[6:]).get("choices") or [{}]
            count += bool(choices[0].get("delta", {}).get("content"))
    return count


@pytest.mark.django_db(transaction=True)
def test_a_gateway_process_killed_mid_stream_bills_what_it_delivered_and_holds_nothing(
    funded_key, shipped_catalog, tmp_path, settings
):
    settings.GATEWAY_METER = "redis"
    workspace, key = funded_key
    prompt = " ".join(f"word{i}" for i in range(12))  # echoed back: ~20 tokens, a third of a second
    body = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]})
    doomed = GatewayProcess(tmp_path)
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", doomed.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while content_deltas(received) < 4:
            received += sock.recv(65536)
        doomed.kill()
        while chunk := sock.recv(65536):  # whatever was on its way before the kill
            received += chunk
    request_id = received.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
    assert b"data: [DONE]" not in received  # cut off mid-stream
    assert not Generation.objects.filter(request_id=request_id).exists()

    heir = GatewayProcess(tmp_path)  # a new process on the same machine adopts the dead one's journal
    try:
        generation = settled_generation(request_id, timeout=20)
    finally:
        heir.kill()

    delivered = content_deltas(received)
    canonical = CanonicalRequest(
        model=MODEL, messages=[Message(role="user", content=[TextBlock(text=prompt)])]
    )
    assert generation.status == "cancelled"
    # The journal counts a delta before sending it: a kill between the two bills one the client never got.
    assert delivered <= generation.tokens_completion <= delivered + 1
    assert generation.tokens_prompt == estimate_prompt_tokens(canonical)
    debit = LedgerEntry.objects.get(kind=EntryKind.USAGE, reference=request_id)
    assert debit.amount_micro_usd == -generation.cost_micro_usd < 0
    assert mirror.sync_client().zscore(mirror.holds(mirror.shard_of(workspace.pk)), request_id) is None
    assert not mirror.sync_client().exists(mirror.hold_hash(workspace.pk, request_id))
    assert ledger_audit() == []

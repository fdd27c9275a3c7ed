"""A gateway process started with a low soft limit on open files (systemd's 1,024 is the usual one)
serves as many streams at once as its hard limit allows: each stream in flight holds two sockets."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_dialects import openai_fake
from tests.fakes.openai_scenario import Scenario
from tests.gateway.conftest import serve_model_from
from tests.gateway.test_settlement_faults import GatewayProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

STREAMS = 200
SOFT_LIMIT = 128  # fewer than the streams' sockets


def soft_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


async def streams_at_once(url: str, key: str) -> list[int]:
    limits = httpx.Limits(max_connections=STREAMS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one() -> int:
            """The answer's status (negative: a stream that did not end); 0: the connection failed."""
            try:
                answer = await client.post(
                    "/api/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "test/paced",
                        "stream": True,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                )
            except httpx.TransportError:
                return 0
            return answer.status_code if b"data: [DONE]" in answer.content else -answer.status_code

        return await asyncio.gather(*(one() for _ in range(STREAMS)))


def test_a_gateway_started_with_few_open_files_serves_more_streams_than_they_allow(
    funded_key, shipped_catalog, tmp_path, monkeypatch
):
    _, key = funded_key
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    paced = Scenario(text="a paced answer, a few characters at a time", frame_interval=0.05)
    with openai_fake("cerebras", paced) as fake:
        serve_model_from("test/paced", [("openai_compatible", fake.url + "/v1")])
        gateway = GatewayProcess(tmp_path / "journal", open_files=SOFT_LIMIT)
        try:
            statuses = asyncio.run(streams_at_once(gateway.url, key))
            raised_to = soft_limit_of(gateway.process.pid)
        finally:
            gateway.stop()
    assert statuses == [200] * STREAMS
    assert raised_to > SOFT_LIMIT

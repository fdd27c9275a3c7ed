"""A deployment whose supervisor is killed (SIGKILL: an OOM kill, a host agent, `kill -9`) leaves no orphan
workers behind: each worker stops as on SIGTERM, so the requests it has in flight are answered and billed,
its metering writer drains, and then it exits — rather than serving on with nobody to restart or stop it
(core/processes.exit_with_parent). A real uvicorn deployment; only the upstream is a fake."""

import asyncio
import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from django.db.models import Sum

from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry
from billing.services import ledger_sum
from console.services.keys import api_key_create
from gateway.models import Generation
from tests.factories import make_user, make_workspace
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from
from tests.scaleout.deployments import deployments, production_env
from tests.scaleout.test_three_deployments import still_held, wait_until_written

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MODEL = "test/supervisor-killed"
IN_FLIGHT = 4
UPSTREAM_SECONDS = 2.0  # long enough to kill the supervisor while every request waits for its answer
COST = 10 * 10  # 10 completion tokens at 10 USD per million tokens


def worker_pids(supervisor_pid: int) -> list[int]:
    """The supervisor's workers (its other child is multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def requests_in_flight_while(url: str, key: str, kill) -> list[tuple[int, dict]]:
    """IN_FLIGHT chat completions at once; `kill()` runs while they all wait for the upstream."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one() -> tuple[int, dict]:
            async with session.post(f"{url}/api/v1/chat/completions", json=body, headers=headers) as answer:
                return answer.status, json.loads(await answer.read())

        sent = [asyncio.ensure_future(one()) for _ in range(IN_FLIGHT)]
        await asyncio.sleep(UPSTREAM_SECONDS / 2)
        kill()
        return await asyncio.gather(*sent)


@pytest.mark.parametrize("meter_redis", ["standalone"], indirect=True)
def test_killing_the_supervisor_stops_its_workers_after_they_answer_and_bill(
    meter_redis, shipped_catalog, tmp_path, monkeypatch, settings
):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    scenario = Scenario(text="ok", completion_tokens=10, failure="slow_first_byte", delay=UPSTREAM_SECONDS)
    with openai_fake("fireworks", scenario) as upstream:
        serve_model_from(
            MODEL, [("fireworks", upstream.base_url)], prompt_price=Decimal(0), completion_price=Decimal(10)
        )
        env = production_env({"REDIS_URL": settings.REDIS_URL, "FAKE_UPSTREAM_KEY": "test-key"})
        # The workers' own writers (METER_WRITER=server): a worker's stop drains its writer too.
        with deployments(1, env, tmp_path, meter_writer=False) as (deployment,):
            owner = make_user()
            workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
            key = api_key_create(workspace=workspace, name="k", created_by=owner).secret
            supervisor = deployment.process
            workers = worker_pids(supervisor.pid)
            assert len(workers) == 2

            def kill_the_supervisor() -> None:
                os.kill(supervisor.pid, signal.SIGKILL)

            answers = asyncio.run(requests_in_flight_while(deployment.url, key, kill_the_supervisor))

            # Every request in flight is answered whole, by workers whose supervisor is already gone.
            assert [status for status, _ in answers] == [200] * IN_FLIGHT, answers
            assert supervisor.wait(5) == -signal.SIGKILL
            # Then the workers stop on their own: no orphan keeps serving on the port.
            deadline = time.monotonic() + 20
            while any(alive(pid) for pid in workers):
                assert time.monotonic() < deadline, f"orphaned workers: {deployment.log_tail()}"
                time.sleep(0.1)
            with pytest.raises(aiohttp.ClientConnectionError):
                asyncio.run(_post_once(deployment.url))

            # Each answer is billed once, in PostgreSQL: the stopping workers drained their writers.
            wait_until_written(workspace.pk, IN_FLIGHT, logs=deployment.log_tail)
            generations = Generation.objects.filter(workspace=workspace)
            assert generations.filter(status="completed").count() == IN_FLIGHT
            debits = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
            assert -debits.aggregate(total=Sum("amount_micro_usd"))["total"] == IN_FLIGHT * COST
            account = CreditAccount.objects.get(workspace=workspace)
            assert (
                account.balance_micro_usd
                == ledger_sum(workspace_id=workspace.pk)
                == 1_000_000 - IN_FLIGHT * COST
            )
            request_ids = list(generations.values_list("request_id", flat=True))
            assert still_held(workspace.pk, request_ids) == []
            assert mirror.queued_records() == 0
            # Stopped cleanly: each worker's journal went with it, nothing left to adopt as a dead process's.
            assert list(deployment.journal.iterdir()) == []


async def _post_once(url: str) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
        session.post(f"{url}/api/v1/chat/completions", json={}) as answer,
    ):
        await answer.read()

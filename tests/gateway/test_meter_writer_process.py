"""METER_WRITER=process (ADR 0022): the gateway processes leave the Redis meter's queue alone, and
`manage.py meter_writer`, a process of its own, writes it to PostgreSQL; SIGTERM makes it drain what is
queued, then end. The real command, as a subprocess, on the test's PostgreSQL and Redis."""

import gc
import io
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from billing import mirror
from billing.models import EntryKind, LedgerEntry
from core.processes import SERVER_GEN0_THRESHOLD
from gateway.metering import writer
from gateway.models import Generation
from tests.scaleout.deployments import ROOT, production_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
BODY = {"model": "hyperinfer/sandbox-pro", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


@pytest.fixture
def writer_in_a_process(settings):
    """The gateway's settings as production sets them; asked for before `gateway_url`, which starts it."""
    settings.GATEWAY_METER = "redis"
    settings.METER_WRITER = "process"


def meter_writer(**extra: str) -> subprocess.Popen[str]:
    redis_urls = {"REDIS_URL": settings.REDIS_URL, "METER_REDIS_URL": settings.METER_REDIS_URL}
    env = production_env({**redis_urls, "METER_WRITER": "process", **extra})
    return subprocess.Popen(
        [sys.executable, "manage.py", "meter_writer"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.05)


def answered(url: str, secret: str, count: int) -> list[str]:
    request_ids = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            response = client.post(
                f"{url}/api/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {secret}"}
            )
            assert response.status_code == 200, response.text
            request_ids.append(response.headers["x-request-id"])
    return request_ids


def written(request_ids: list[str]) -> bool:
    return Generation.objects.filter(request_id__in=request_ids).count() == len(request_ids)


def test_the_writer_process_writes_the_queue_and_drains_it_when_stopped(
    writer_in_a_process, gateway_url, funded_key
):
    workspace, secret = funded_key
    left = mirror.queued_records()  # by earlier tests, if any (their databases are gone: a writer drops them)
    first = answered(gateway_url, secret, 4)
    wait_until(lambda: mirror.queued_records() == left + 4, "the settled records queued")
    # longer than a flusher gathers and looks again: the gateway process writes none of them
    time.sleep(writer.GATHER_SECONDS + 2 * writer.IDLE_SECONDS)
    assert mirror.queued_records() == left + 4
    assert not Generation.objects.filter(request_id__in=first).exists()

    process = meter_writer()
    try:
        wait_until(lambda: written(first), "the writer process wrote the queue")
        # Stopped while records wait: held still (SIGSTOP), it gets SIGTERM with three records queued.
        process.send_signal(signal.SIGSTOP)
        second = answered(gateway_url, secret, 3)
        wait_until(lambda: mirror.queued_records() == 3, "the next records queued")
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.rstrip().endswith("meter writer: stopped")
    assert mirror.queued_records() == 0 and written(second)
    generations = Generation.objects.filter(request_id__in=first + second)
    debits = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    assert sum(g.cost_micro_usd for g in generations) == -sum(e.amount_micro_usd for e in debits) > 0


def test_the_writer_process_refuses_the_sql_meter():
    process = meter_writer(GATEWAY_METER="sql")
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "GATEWAY_METER is sql" in err


def test_the_writer_process_puts_its_start_up_heap_out_of_the_collectors_walks(monkeypatch, settings):
    """Each batch makes thousands of objects; the collector must not walk Django's heap for them."""
    settings.GATEWAY_METER = "redis"
    seen = {}

    async def run_alone() -> None:
        seen.update(frozen=gc.get_freeze_count(), young=gc.get_threshold()[0])

    monkeypatch.setattr(writer, "run_alone", run_alone)
    threshold = gc.get_threshold()
    try:
        call_command("meter_writer", stdout=io.StringIO())
    finally:  # this test process's own collector, as it was
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert seen["frozen"] > 1000 and seen["young"] == SERVER_GEN0_THRESHOLD

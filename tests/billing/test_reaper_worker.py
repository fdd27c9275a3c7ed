"""The reaper as it runs in production: a real Celery worker on Redis, against the real database."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from django.utils import timezone

from billing import reservations
from billing.models import CreditAccount, Reservation, ReservationStatus
from billing.tasks import reap_expired_reservations
from config.celery import app as celery_app
from tests.factories import make_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def worker_database_url() -> str:
    """DATABASE_URL pointed at the database this test run created (test_<name>)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture
def worker():
    """A worker on its own queue, so nothing else on this Redis can take the test's task."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    previous_queue, celery_app.conf.task_default_queue = celery_app.conf.task_default_queue, queue
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "CELERY_QUEUE": queue}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    celery_app.conf.task_default_queue = previous_queue
    process.terminate()
    process.wait(timeout=20)


def test_a_worker_releases_reservations_of_crashed_requests(worker):
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(
        workspace_id=workspace.id, api_key_id=None, amount_micro_usd=600, request_id="crashed"
    )
    Reservation.objects.filter(request_id="crashed").update(expires_at=timezone.now() - timedelta(seconds=1))
    reap_expired_reservations.delay()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Reservation.objects.get(request_id="crashed").status == ReservationStatus.EXPIRED:
            break
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.2)
    assert Reservation.objects.get(request_id="crashed").status == ReservationStatus.EXPIRED
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 0

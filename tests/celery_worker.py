"""A real Celery worker on Redis, against the test run's database: tasks as production runs them."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]


def worker_database_url() -> str:
    """DATABASE_URL pointed at the database this test run created (test_<name>)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[str]]:
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
    # The queue's bindings (kombu keeps them without expiry) go with it, and the deadlines its control
    # mailbox left (kombu writes them again when a worker needs them).
    with celery_app.connection_for_write() as connection:
        client = connection.default_channel.client
        bindings = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        client.delete(queue, *bindings, "_kombu.binding_deadlines")

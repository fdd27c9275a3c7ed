"""The reaper as it runs in production: a real Celery worker on Redis, against the real database."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import reservations
from billing.models import CreditAccount, Reservation, ReservationStatus
from billing.tasks import reap_expired_reservations
from tests.factories import make_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


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

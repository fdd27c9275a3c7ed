"""In the embedded default there is no `celery beat`: the ASGI process runs the schedule in a thread."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import reservations
from billing.models import CreditAccount, Reservation, ReservationStatus
from config.embedded_beat import start_embedded_beat
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_embedded_beat_runs_the_reaper_on_its_schedule():
    workspace = make_workspace(credits_micro_usd=1_000)
    reservations.reserve(
        workspace_id=workspace.id, api_key_id=None, amount_micro_usd=600, request_id="crashed"
    )
    Reservation.objects.filter(request_id="crashed").update(expires_at=timezone.now() - timedelta(seconds=1))

    schedule = {
        "reap": {"task": "billing.tasks.reap_expired_reservations", "schedule": timedelta(seconds=0.2)}
    }
    stop = start_embedded_beat(schedule, tick_seconds=0.05)
    try:
        deadline = time.monotonic() + 10
        while Reservation.objects.get(request_id="crashed").status != ReservationStatus.EXPIRED:
            assert time.monotonic() < deadline, "the embedded beat never ran the reaper"
            time.sleep(0.05)
    finally:
        stop.set()
    assert CreditAccount.objects.get(workspace=workspace).reserved_micro_usd == 0


def test_the_beat_schedule_names_registered_tasks():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks

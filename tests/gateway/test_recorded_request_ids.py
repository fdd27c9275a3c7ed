"""gateway.selectors.recorded_request_ids, which the meter's writer and the journal's keeper ask before they
write or forget a settlement: exactly the ids that have a generation record, whatever the number asked
about (it asks in chunks), with PostgreSQL's array parameter and with the placeholders other databases get."""

import datetime
import uuid

import pytest
from django.db import connection

from gateway.selectors import RECORDED_CHUNK, recorded_request_ids
from tests.catalog.traffic import record_generation
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_only_the_recorded_ids_come_back_across_chunks(vendor, monkeypatch):
    if vendor != "postgresql":  # the placeholder form, which PostgreSQL reads too
        monkeypatch.setattr(connection, "vendor", "sqlite")
    workspace = make_workspace()
    recorded = {
        record_generation(workspace=workspace, model="m", ago=datetime.timedelta()).request_id
        for _ in range(3)
    }
    unknown = [uuid.uuid4().hex for _ in range(2 * RECORDED_CHUNK + 5)]
    first, second, third = sorted(recorded)
    asked = [first, *unknown[:RECORDED_CHUNK], second, *unknown[RECORDED_CHUNK:], third]  # one in each chunk

    assert recorded_request_ids(request_ids=asked) == recorded
    assert recorded_request_ids(request_ids=unknown) == set()
    assert recorded_request_ids(request_ids=[]) == set()

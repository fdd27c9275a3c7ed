"""gateway.selectors.recorded_request_ids, which the meter's writer and the journal's keeper ask before they
write or forget a settlement: exactly the ids that have a generation record, whatever the number asked
about (it asks in chunks), with PostgreSQL's array parameter and with the placeholders other databases get.
And what the keeper makes of it: which of its taken settlements are done with."""

import datetime
import time
import uuid

import pytest
from django.db import connection

from core.encoding import compact_json
from gateway.metering.journal import RESETTLE_SECONDS, Entry
from gateway.metering.keeper import billed_in_postgres
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


def taken_entry(workspace_id: uuid.UUID | str, taken_at: float) -> Entry:
    header = compact_json({"caller": {"workspace_id": str(workspace_id)}})
    return Entry(
        uuid.uuid4().hex, (header,), 1, taken_at, taken_at=taken_at, next_try=taken_at + RESETTLE_SECONDS
    )


def test_the_keeper_counts_a_recorded_request_done_and_a_gone_workspaces_only_once_it_is_due():
    workspace = make_workspace()
    recorded = record_generation(workspace=workspace, model="m", ago=datetime.timedelta()).request_id
    now = time.time()
    on_its_way = taken_entry(workspace.id, now)  # its record not written yet
    in_postgres = taken_entry(workspace.id, now)
    in_postgres.request_id = recorded
    workspace_gone = taken_entry(uuid.uuid4(), now)  # its writer dropped the record: nothing to bill
    entries = [on_its_way, in_postgres, workspace_gone]

    assert billed_in_postgres(entries=entries, now=now) == {recorded}
    assert billed_in_postgres(entries=entries, now=now + RESETTLE_SECONDS) == {
        recorded,
        workspace_gone.request_id,
    }

"""The settlement journal through a PostgreSQL outage (ADR 0010, 0025), on a real PostgreSQL and Redis: past
its limit in memory it spills to disk and brings entries back, a dead process's spill segments are adopted a
few a pass, what Redis still holds waits for the writer, and a pass waits for PostgreSQL only so long."""

import os
import time
import uuid

import pytest
from django.db import OperationalError

from billing import mirror
from billing.models import EntryKind, LedgerEntry
from gateway import outage
from gateway.audit import ledger_audit
from gateway.canonical import Usage
from gateway.metering import Outcome, cost_of, writer
from gateway.metering import journal as journal_module
from gateway.metering import keeper as keeper_module
from gateway.metering.journal import RESETTLE_SECONDS, Journal, read_entries
from gateway.metering.keeper import Keeper
from gateway.metering.redis_meter import RedisMeter
from tests.factories import key_less_caller, make_workspace
from tests.gateway.journal_support import die, opened, reserve_in_sql, reserved_and_over
from tests.gateway.redis_meter_support import MODEL, run

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def finished_in_sql(journal: Journal, workspace_id: uuid.UUID, count: int) -> list[str]:
    """`count` requests reserved by the SQL meter and over, their settlements not taken by any meter yet."""
    request_ids = [opened(journal, workspace_id) for _ in range(count)]
    for request_id in request_ids:
        reserve_in_sql(workspace_id, request_id)
        outcome = Outcome(status="completed", usage=Usage(prompt_tokens=5, completion_tokens=6))
        journal.settling(request_id=request_id, outcome=outcome)
    return request_ids


def spill_files(journal: Journal) -> list[str]:
    return sorted(segment.path.name for segment, _ in journal.spilled)


def assert_debited_once(request_ids: list[str], cost: int | None = None) -> None:
    """One usage debit for each request (of `cost` each, when given), and the ledger audits clean."""
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference__in=request_ids)
    assert sorted(debits.values_list("reference", flat=True)) == sorted(request_ids)
    if cost is not None:
        assert {entry.amount_micro_usd for entry in debits} == {-cost}
    assert ledger_audit() == []


@pytest.mark.redis
def test_past_its_limit_the_journal_waits_on_disk_for_postgresql_and_bills_each_request_once(
    settings, tmp_path, monkeypatch
):
    """PostgreSQL down under load: nothing the Redis meter took is confirmed, so nothing left memory (a
    worker held ~1.7 GB after ten minutes). Past its limit the oldest finished entries go to spill
    segments, locked like the live one; open requests stay. PostgreSQL back, they return a chunk a pass, and
    every request is billed once."""
    settings.GATEWAY_METER = "redis"
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 30
    monkeypatch.setattr(outage, "PROBE_SECONDS", 0.0)  # PostgreSQL asked again at the next pass once back
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 10)
    workspace = make_workspace(credits_micro_usd=10_000_000)
    caller = key_less_caller(workspace.id)
    meter = RedisMeter()
    usage = Usage(prompt_tokens=10, completion_tokens=20)

    def postgres_down(**_):
        raise OperationalError("connection refused")

    trims = []  # a pass that moved entries to or from disk gives the freed memory back
    monkeypatch.setattr(keeper_module, "release_free_memory", lambda: trims.append(1))

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        finished = [opened(journal, workspace.id) for _ in range(55)]
        for request_id in finished:
            await meter.reserve(
                caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
            )
            journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=usage))
        under_way = [opened(journal, workspace.id) for _ in range(5)]
        with monkeypatch.context() as outage:
            outage.setattr(keeper_module, "billed_in_postgres", postgres_down)
            # The requests never settled themselves: the keeper does, and the meter takes them all.
            await keeper.keep_once(time.time() + journal_module.FIRST_TRY_SECONDS)

            assert len(journal.pending) == 30 and journal.spilled_entries == 30
            assert set(under_way) <= set(journal.pending)  # an open request's entry stays in memory
            on_disk = {
                request_id
                for segment, _ in journal.spilled
                for request_id in read_entries(segment.path.read_bytes())
            }
            assert on_disk == set(finished[:30])  # the oldest, whole chunks
            assert all(entry.taken_at is not None for entry in journal.pending.values() if entry.outcome)
            assert [orphan.path for orphan in journal_module.orphans(tmp_path, journal.segment.path)] == []
            assert len(trims) == 1
            await keeper.keep_once(time.time())  # still down: nothing comes back
            assert journal.spilled_entries == 30 and len(trims) == 1

        await writer.drain()  # PostgreSQL is back: the writer catches up with the queue
        passes = 0
        while journal.spilled:
            await keeper.keep_once(time.time() + keeper_module.CONFIRM_AFTER_SECONDS)
            passes += 1
        assert passes == 3 and len(trims) == 4  # a chunk a pass
        assert set(journal.pending) == set(under_way)
        assert list(tmp_path.glob("*.journal")) == [journal.segment.path]  # the spill segments are gone
        return finished

    finished = run(scenario())
    assert_debited_once(finished, cost_of(MODEL, usage))


def test_spilled_entries_no_meter_took_come_back_to_be_settled(settings, tmp_path, monkeypatch):
    """Spilled while the meter refused them: PostgreSQL has no bill, so they come back due at once, and the
    next pass bills them."""
    settings.GATEWAY_METER = "sql"
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 4
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 3)
    workspace = make_workspace(credits_micro_usd=1_000_000)
    journal = Journal(tmp_path)
    request_ids = finished_in_sql(journal, workspace.id, 6)

    assert run(journal.spill()) == 3 and list(journal.pending) == request_ids[3:]
    keeper = Keeper(journal)
    run(keeper.keep_once(time.time() + journal_module.FIRST_TRY_SECONDS))  # bills the three in memory
    assert list(journal.pending) == request_ids[:3] and not journal.spilled  # and brings the spilled back
    assert {entry.next_try for entry in journal.pending.values()} == {0.0}  # due at once
    assert not LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference__in=request_ids[:3]).exists()
    run(keeper.keep_once(time.time()))

    assert journal.pending == {}
    assert_debited_once(request_ids)


def test_a_dead_processes_spill_segments_are_adopted_and_billed_once(settings, tmp_path, monkeypatch):
    settings.GATEWAY_METER = "sql"
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 2
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 2)
    workspace = make_workspace(credits_micro_usd=1_000_000)
    dead = Journal(tmp_path)
    request_ids = finished_in_sql(dead, workspace.id, 6)
    dead.pending[request_ids[0]].taken_at = time.time()  # the meter had taken one: it is settled again
    assert run(dead.spill()) == 4 and len(spill_files(dead)) == 2
    die(dead)
    for segment, _ in dead.spilled:
        os.close(segment.fd)

    heir = Journal(tmp_path)
    keeper = Keeper(heir)
    for _ in range(3):  # a segment or two a pass, at this limit
        run(keeper.keep_once(time.time()))

    assert heir.pending == {} and list(tmp_path.glob("*.journal")) == [heir.segment.path]
    assert_debited_once(request_ids)


def test_an_entry_the_meter_took_says_so_in_the_segment_it_moves_to(tmp_path):
    journal = Journal(tmp_path)
    request_id = opened(journal, uuid.uuid4())
    journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=Usage(1, 1)))
    journal.taken(request_id=request_id, durable=False)

    journal.compact()

    read_back = read_entries(journal.segment.path.read_bytes())[request_id]
    assert read_back.taken_at == pytest.approx(journal.pending[request_id].taken_at, abs=0.001)


def test_an_heir_adopts_a_dead_processes_spill_segments_a_few_a_pass_not_all_at_once(
    settings, tmp_path, monkeypatch
):
    """After a crash in a long outage there may be hundreds of spill segments: read all in one pass, they
    would fill the heir's memory, which their spilling was there to spare."""
    settings.GATEWAY_METER = "sql"
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 2
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 2)
    workspace = make_workspace(credits_micro_usd=1_000_000)
    dead = Journal(tmp_path)
    request_ids = finished_in_sql(dead, workspace.id, 8)
    assert run(dead.spill()) == 6 and len(dead.pending) == 2
    dead.compact()  # the live segment down to what is in memory, as the keeper's compaction leaves it
    die(dead)
    for segment, _ in dead.spilled:
        os.close(segment.fd)
    heir = Keeper(Journal(tmp_path))
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference__in=request_ids)

    run(heir.keep_once(time.time()))

    assert len(list(tmp_path.glob("*.journal"))) == 1 + 4 - 1  # the heir's, and the three not adopted yet
    assert debits.count() == 2
    for _ in range(3):
        run(heir.keep_once(time.time()))
    assert list(tmp_path.glob("*.journal")) == [heir.journal.segment.path]
    assert sorted(debits.values_list("reference", flat=True)) == sorted(request_ids)
    assert ledger_audit() == []


@pytest.mark.redis
def test_a_pass_waits_for_postgresql_only_so_long_and_still_syncs(settings, tmp_path, monkeypatch):
    """The probe that finds PostgreSQL gone waits out the pool's timeout (10 s): the pass gives up on it
    after CONFIRM_SECONDS, and the segment is synced every pass all the same."""
    settings.GATEWAY_METER = "redis"
    monkeypatch.setattr(keeper_module, "CONFIRM_SECONDS", 0.2)
    journal = Journal(tmp_path)
    request_id = opened(journal, uuid.uuid4())
    journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=Usage(1, 1)))
    journal.taken(request_id=request_id, durable=False)

    def pool_timeout(**_):
        time.sleep(1.0)
        raise OperationalError("couldn't get a connection after 1.00 sec")

    monkeypatch.setattr(keeper_module, "billed_in_postgres", pool_timeout)
    synced = []
    monkeypatch.setattr(journal, "sync", lambda: synced.append(time.monotonic()))

    started = time.monotonic()
    run(Keeper(journal).keep_once(time.time()))

    assert synced and synced[0] - started < 0.6
    assert list(journal.pending) == [request_id]  # still waiting to be confirmed


@pytest.mark.redis
def test_a_settlement_redis_still_holds_waits_for_the_writer_and_is_not_settled_again(settings, tmp_path):
    """After a PostgreSQL outage every entry is past its confirmation time while the writer works through
    the backlog: the meter still holds them (their done markers), so they wait, where each was settled
    again, 100,000 a worker. One Redis lost is settled again."""
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()
    usage = Usage(prompt_tokens=10, completion_tokens=20)

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        request_ids = await reserved_and_over(journal, meter, workspace.id, usage)
        await keeper.keep_once(time.time() + journal_module.FIRST_TRY_SECONDS)  # the meter takes them
        lost = request_ids[0]
        mirror.sync_client().delete(mirror.done_marker(workspace.id, lost))  # as a Redis restart would

        later = time.time() + RESETTLE_SECONDS + 1
        await keeper.keep_once(later)  # not in PostgreSQL yet: the writer has not run

        entries = journal.pending
        assert (entries[lost].resettles, entries[lost].taken_at) == (1, None)  # settled again
        for waiting in request_ids[1:]:
            assert entries[waiting].resettles == 0 and entries[waiting].taken_at is not None
            assert entries[waiting].next_try > later
        await keeper.keep_once(later)
        await writer.drain()
        await keeper.keep_once(later + 4 * RESETTLE_SECONDS)
        assert journal.pending == {}
        return request_ids

    request_ids = run(scenario())
    assert_debited_once(request_ids, cost_of(MODEL, usage))

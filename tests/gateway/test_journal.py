"""The settlement journal (ADR 0010) on a real PostgreSQL and Redis: what a dead process left is adopted and
billed, what a meter refused or lost is settled again, and nothing is billed twice."""

import time
import uuid

import pytest
from django.db import OperationalError
from prometheus_client.parser import text_string_to_metric_families

from billing import mirror
from billing.models import EntryKind, LedgerEntry, Reservation, ReservationStatus
from gateway.audit import ledger_audit
from gateway.canonical import Usage
from gateway.metering import Outcome, cost_of, writer
from gateway.metering import journal as journal_module
from gateway.metering import keeper as keeper_module
from gateway.metering.journal import RESETTLE_SECONDS, Journal, read_entries
from gateway.metering.keeper import CONFIRM_AFTER_SECONDS, Keeper, loop_journal, stop_keeper
from gateway.metering.redis_meter import RedisMeter
from gateway.metrics_scrape import exposition
from gateway.models import Generation
from tests.factories import key_less_caller, make_workspace
from tests.gateway.journal_support import (
    PROMPT_ESTIMATE,
    die,
    opened,
    redis_refusing,
    reserve_in_sql,
    reserved_and_over,
    settlement,
    usage_debits,
)
from tests.gateway.redis_meter_support import MODEL, run

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def billed_micro_usd() -> float:
    """/metrics' micro-USD billed for MODEL so far (in this test process)."""
    samples = text_string_to_metric_families(exposition().decode())
    return sum(
        sample.value
        for family in samples
        for sample in family.samples
        if sample.name == "hyperinfer_billed_micro_usd_total" and sample.labels == {"model": MODEL.slug}
    )


def test_a_dead_processes_journal_is_adopted_and_each_request_billed_for_what_it_delivered(
    settings, tmp_path
):
    settings.GATEWAY_METER = "sql"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    dead = Journal(tmp_path)
    finished, cut_mid_stream, cut_before_any = (opened(dead, workspace.id) for _ in range(3))
    for request_id in (finished, cut_mid_stream, cut_before_any):
        reserve_in_sql(workspace.id, request_id)
    dead.routed(request_id=cut_mid_stream, provider="sandbox", upstream_model_id="sandbox-pro")
    dead.delivered(request_id=cut_mid_stream, count=7)
    usage = Usage(prompt_tokens=12, completion_tokens=30)
    dead.settling(request_id=finished, outcome=Outcome(status="completed", usage=usage, provider="sandbox"))
    die(dead)

    heir = Journal(tmp_path)
    run(Keeper(heir).keep_once(time.time()))

    records = {g.request_id: g for g in Generation.objects.filter(workspace=workspace)}
    assert records[finished].status == "completed"
    assert records[finished].cost_micro_usd == cost_of(MODEL, usage)
    cut = records[cut_mid_stream]
    assert (cut.status, cut.provider, cut.tokens_prompt, cut.tokens_completion) == (
        "cancelled",
        "sandbox",
        PROMPT_ESTIMATE,
        7,
    )
    assert cut.cost_micro_usd == cost_of(MODEL, Usage(prompt_tokens=PROMPT_ESTIMATE, completion_tokens=7))
    assert (records[cut_before_any].status, records[cut_before_any].cost_micro_usd) == ("failed", 0)
    held = Reservation.objects.filter(workspace=workspace, status=ReservationStatus.HELD)
    assert not held.exists()
    assert not dead.segment.path.exists() and heir.pending == {}
    assert ledger_audit() == []


def test_a_request_with_server_tools_cut_off_mid_loop_bills_its_finished_steps_and_calls(settings, tmp_path):
    """ADR 0013: the journal knows the steps' counted usage and the calls run at the last finished step,
    and bills the deltas delivered after it with the prompt estimate, as for any request cut off."""
    settings.GATEWAY_METER = "sql"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    dead = Journal(tmp_path)
    request_id = opened(dead, workspace.id)
    reserve_in_sql(workspace.id, request_id)
    dead.delivered(request_id=request_id, count=3)
    counted = Usage(prompt_tokens=120, completion_tokens=9, cached_prompt_tokens=20)
    dead.stepped(request_id=request_id, usage=counted, tool_costs={"web_search": 5_000}, delivered=3)
    dead.delivered(request_id=request_id, count=8)  # the next step had sent 5 more when the process died
    die(dead)

    run(Keeper(Journal(tmp_path)).keep_once(time.time()))

    cut = Generation.objects.get(request_id=request_id)
    billed = Usage(prompt_tokens=120 + PROMPT_ESTIMATE, completion_tokens=9 + 5, cached_prompt_tokens=20)
    assert (cut.status, cut.tokens_prompt, cut.tokens_completion) == ("cancelled", 120 + PROMPT_ESTIMATE, 14)
    assert cut.tool_costs_micro_usd == {"web_search": 5_000}
    assert cut.cost_micro_usd == cost_of(MODEL, billed) + 5_000
    assert ledger_audit() == []


def test_a_live_processes_journal_is_left_alone(settings, tmp_path):
    settings.GATEWAY_METER = "sql"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    alive = Journal(tmp_path)
    request_id = opened(alive, workspace.id)
    reserve_in_sql(workspace.id, request_id)

    run(Keeper(Journal(tmp_path)).keep_once(time.time()))

    assert alive.segment.path.exists() and request_id in alive.pending
    assert not Generation.objects.filter(request_id=request_id).exists()


def test_adopting_twice_after_a_crash_mid_adoption_bills_once(settings, tmp_path):
    """The heir writes the entries to its own segment before removing the orphan's; a crash in between
    leaves both, and both are settled: the second settlement changes nothing."""
    settings.GATEWAY_METER = "sql"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    dead = Journal(tmp_path)
    request_id = opened(dead, workspace.id)
    reserve_in_sql(workspace.id, request_id)
    dead.delivered(request_id=request_id, count=5)
    left_behind = dead.segment.path.read_bytes()
    die(dead)
    heir = Keeper(Journal(tmp_path))
    run(heir.keep_once(time.time()))
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference=request_id)
    assert debits.count() == 1

    copy = tmp_path / "copy.journal"
    copy.write_bytes(left_behind)
    run(heir.keep_once(time.time()))

    assert debits.count() == 1 and not copy.exists() and heir.journal.pending == {}
    assert ledger_audit() == []


@pytest.mark.redis
def test_settlements_refused_through_a_long_outage_are_settled_within_a_probe_of_redis_coming_back(
    settings, tmp_path
):
    """Refused seven times each (a minute of backoff before their next try), three settlements are taken in
    the keeper's first pass after Redis answers again, not a minute later; while Redis is down, a probe
    changes nothing and is tried once every PROBE_SECONDS."""
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()
    usage = Usage(prompt_tokens=10, completion_tokens=20)

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        request_ids = await reserved_and_over(journal, meter, workspace.id, usage)
        async with redis_refusing(settings):
            for _ in range(7):
                await keeper.keep_once(max(entry.next_try for entry in journal.pending.values()))
            assert {entry.attempts for entry in journal.pending.values()} == {7}
            now = time.time()
            assert all(entry.next_try > now + 50 for entry in journal.pending.values())
            keeper.probed_at = 0.0
            await keeper.keep_once(now)  # a probe, refused: nothing changes
            assert {entry.attempts for entry in journal.pending.values()} == {7}
            assert keeper.probed_at == now

        await keeper.keep_once(now + 1)  # within PROBE_SECONDS of the last probe: not yet
        assert all(entry.taken_at is None for entry in journal.pending.values())
        await keeper.keep_once(now + keeper_module.PROBE_SECONDS)
        assert all(journal.pending[request_id].taken_at is not None for request_id in request_ids)
        await writer.drain()

    run(scenario())
    assert usage_debits(workspace) == [-cost_of(MODEL, usage)] * 3


@pytest.mark.redis
def test_a_stopping_process_settles_what_the_meter_refused_without_waiting_its_backoff(settings, tmp_path):
    """The last pass of a process that stops tries every settlement not yet taken, however long its backoff
    still runs and however recently the meter was probed: one the meter takes now is billed now, not left
    in the journal for a process that may never start on this host again (a deployment scaled in)."""
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()
    usage = Usage(prompt_tokens=10, completion_tokens=20)

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        request_ids = await reserved_and_over(journal, meter, workspace.id, usage)
        async with redis_refusing(settings):
            for _ in range(3):
                await keeper.keep_once(max(entry.next_try for entry in journal.pending.values()))
        now = time.time()
        keeper.probed_at = now  # just probed: no probe in the last pass either
        assert all(entry.next_try > now for entry in journal.pending.values())

        await keeper.keep_once(now, cut_off_open=True)
        assert all(journal.pending[request_id].taken_at is not None for request_id in request_ids)
        await writer.drain()

    run(scenario())
    assert usage_debits(workspace) == [-cost_of(MODEL, usage)] * 3


@pytest.mark.redis
def test_a_clean_stop_leaves_no_journal_behind(settings):
    """A process that stops (its lifespan's shutdown) after its requests settled in Redis: its writer drains
    them into PostgreSQL, and they leave the journal, so no segment is left for the next process to adopt,
    settle again and report as a dead process's (before, every stop left the last second's requests)."""
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()
    usage = Usage(prompt_tokens=10, completion_tokens=20)

    async def scenario():
        journal = loop_journal()
        for request_id in await reserved_and_over(journal, meter, workspace.id, usage):
            await meter.settle(settlement(request_id, workspace.id, usage))  # as the request does itself
            journal.taken(request_id=request_id, durable=False)
        assert len(journal.pending) == 3
        await stop_keeper(drain_writer=writer.drain)
        return journal

    journal = run(scenario())
    assert journal.pending == {}
    assert list(settings.GATEWAY_JOURNAL_DIR.iterdir()) == []
    assert usage_debits(workspace) == [-cost_of(MODEL, usage)] * 3


@pytest.mark.redis
def test_a_settlement_redis_refused_is_settled_by_the_keeper_once_redis_is_back(settings, tmp_path):
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        request_id = opened(journal, workspace.id)
        caller = key_less_caller(workspace.id)
        await meter.reserve(
            caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
        )
        usage = Usage(prompt_tokens=10, completion_tokens=20)
        journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=usage))
        async with redis_refusing(settings):
            await keeper.keep_once(journal.pending[request_id].next_try)  # the request never settled itself
        refused = journal.pending[request_id]
        assert (refused.taken_at, refused.attempts) == (None, 1)

        billed_before = billed_micro_usd()
        await keeper.keep_once(refused.next_try)
        assert journal.pending[request_id].taken_at is not None
        # The pipeline counted it deferred; billed now, it is in /metrics' billed total.
        assert billed_micro_usd() - billed_before == cost_of(MODEL, usage)
        await writer.drain()
        await keeper.keep_once(time.time() + CONFIRM_AFTER_SECONDS)
        assert journal.pending == {}
        return request_id, cost_of(MODEL, usage)

    request_id, cost = run(scenario())
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference=request_id)
    assert [entry.amount_micro_usd for entry in debits] == [-cost]
    assert ledger_audit() == []


@pytest.mark.redis
def test_a_settlement_redis_lost_is_settled_again_and_billed_once(settings, tmp_path):
    """Redis restarted without persistence: the queued record and its replay guard are gone. The keeper
    sees PostgreSQL still lacks the generation and settles it again; a second replay changes nothing."""
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    meter = RedisMeter()

    async def scenario():
        journal = Journal(tmp_path)
        keeper = Keeper(journal)
        request_id = opened(journal, workspace.id)
        caller = key_less_caller(workspace.id)
        await meter.reserve(
            caller=caller, model=MODEL, request_id=request_id, prompt_tokens=10, max_tokens=50
        )
        usage = Usage(prompt_tokens=10, completion_tokens=20)
        journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=usage))
        await keeper.keep_once(journal.pending[request_id].next_try)  # the request never settled itself
        assert journal.pending[request_id].taken_at is not None
        client = mirror.sync_client()
        client.delete(  # one shard's names: one cluster slot
            mirror.queue(mirror.shard_of(workspace.id)),
            mirror.done_marker(workspace.id, request_id),
            mirror.workspace_hash(workspace.id),
        )

        later = time.time() + RESETTLE_SECONDS + 1
        billed_before = billed_micro_usd()
        await keeper.keep_once(later)  # not in PostgreSQL: due again
        await keeper.keep_once(later)  # settled again
        assert billed_micro_usd() == billed_before  # billed once, so counted once (the first time)
        await writer.drain()
        await keeper.keep_once(later + 2 * RESETTLE_SECONDS)
        assert journal.pending == {}
        return request_id, cost_of(MODEL, usage)

    request_id, cost = run(scenario())
    debits = LedgerEntry.objects.filter(kind=EntryKind.USAGE, reference=request_id)
    assert [entry.amount_micro_usd for entry in debits] == [-cost]
    assert Generation.objects.filter(request_id=request_id).count() == 1
    assert ledger_audit() == []


@pytest.mark.redis
def test_a_pass_postgresql_cannot_answer_still_compacts_and_syncs(settings, tmp_path, monkeypatch):
    """PostgreSQL down: the entries the Redis meter took wait for a later pass, and this pass still does the
    rest of its work (it ended at the failed confirmation, and left the segment unsynced for the outage)."""
    settings.GATEWAY_METER = "redis"
    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 1)  # a segment of any size is due
    journal = Journal(tmp_path)
    request_id = opened(journal, uuid.uuid4())
    journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=Usage(1, 1)))
    journal.taken(request_id=request_id, durable=False)

    asked = []

    def postgres_down(**_):
        asked.append(1)
        raise OperationalError("connection refused")

    monkeypatch.setattr(keeper_module, "billed_in_postgres", postgres_down)
    synced = []
    monkeypatch.setattr(journal, "sync", lambda: synced.append(journal.segment.path))
    before = journal.segment.path

    run(Keeper(journal).keep_once(time.time() + CONFIRM_AFTER_SECONDS))

    assert asked == [1] and list(journal.pending) == [request_id]
    assert journal.segment.path != before and synced == [journal.segment.path]
    assert list(read_entries(journal.segment.path.read_bytes())) == [request_id]


def test_an_entry_the_meter_took_is_asked_about_once_the_writer_has_had_time_to_write_it(
    settings, tmp_path, monkeypatch
):
    """Asked at once, most entries taken just before a pass were not in PostgreSQL yet and were asked again
    at the next; an entry is asked about once it was taken CONFIRM_AFTER_SECONDS ago."""
    settings.GATEWAY_METER = "redis"
    journal = Journal(tmp_path)
    request_id = opened(journal, uuid.uuid4())
    journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=Usage(1, 1)))
    journal.taken(request_id=request_id, durable=False)
    taken_at = journal.pending[request_id].taken_at
    asked: list[list[str]] = []

    def billed_in_postgres(*, entries, now):
        asked.append([entry.request_id for entry in entries])
        return {entry.request_id for entry in entries}

    monkeypatch.setattr(keeper_module, "billed_in_postgres", billed_in_postgres)
    keeper = Keeper(journal)
    run(keeper.keep_once(taken_at + CONFIRM_AFTER_SECONDS / 2))
    assert asked == [] and list(journal.pending) == [request_id]
    run(keeper.keep_once(taken_at + CONFIRM_AFTER_SECONDS))
    assert asked == [[request_id]] and journal.pending == {}

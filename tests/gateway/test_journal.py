"""The settlement journal (ADR 0010) on a real PostgreSQL and Redis: what a dead process left is adopted and
billed, what a meter refused or lost is settled again, and nothing is billed twice."""

import json
import os
import time
import uuid

import pytest
from django.db import OperationalError
from prometheus_client.parser import text_string_to_metric_families

from billing import mirror
from billing.models import EntryKind, LedgerEntry, Reservation, ReservationStatus
from gateway.audit import ledger_audit
from gateway.canonical import Usage
from gateway.metering import Outcome, Settlement, cost_of, sql, writer
from gateway.metering import journal as journal_module
from gateway.metering import keeper as keeper_module
from gateway.metering.base import settlement_header
from gateway.metering.journal import RESETTLE_SECONDS, Journal, read_entries
from gateway.metering.keeper import Keeper
from gateway.metering.redis_meter import RedisMeter, close_loop_client
from gateway.metrics_scrape import exposition
from gateway.models import Generation
from tests.factories import key_less_caller, make_workspace
from tests.gateway.redis_meter_support import MODEL, run

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROMPT_ESTIMATE = 10


def header(request_id: str, workspace_id: uuid.UUID) -> bytes:
    settlement = Settlement(
        request_id=request_id,
        caller=key_less_caller(workspace_id),
        model=MODEL,
        ingress_format="chat_completions",
        streamed=True,
        end_user=None,
        outcome=Outcome(status="completed", usage=Usage(prompt_tokens=0, completion_tokens=0)),
    )
    return settlement.header()


def opened(journal: Journal, workspace_id: uuid.UUID) -> str:
    request_id = uuid.uuid4().hex
    journal.opened(
        request_id=request_id, header=header(request_id, workspace_id), prompt_estimate=PROMPT_ESTIMATE
    )
    return request_id


def reserve_in_sql(workspace_id: uuid.UUID, request_id: str) -> None:
    sql.reserve_sync(
        caller=key_less_caller(workspace_id),
        model=MODEL,
        request_id=request_id,
        prompt_tokens=PROMPT_ESTIMATE,
        max_tokens=50,
    )


def billed_micro_usd() -> float:
    """/metrics' micro-USD billed for MODEL so far (in this test process)."""
    samples = text_string_to_metric_families(exposition().decode())
    return sum(
        sample.value
        for family in samples
        for sample in family.samples
        if sample.name == "hyperinfer_billed_micro_usd_total" and sample.labels == {"model": MODEL.slug}
    )


def die(journal: Journal) -> None:
    """What a killed process does to its journal: nothing, but its lock goes with it."""
    os.close(journal.segment.fd)


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
def test_a_settlement_redis_refused_is_settled_by_the_keeper_once_redis_is_back(settings, tmp_path):
    settings.GATEWAY_METER = "redis"
    workspace = make_workspace(credits_micro_usd=1_000_000)
    good_url = settings.REDIS_URL
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
        await close_loop_client()
        settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: connection refused
        await keeper.keep_once(journal.pending[request_id].next_try)  # the request never settled itself
        refused = journal.pending[request_id]
        assert (refused.taken_at, refused.attempts) == (None, 1)

        await close_loop_client()
        settings.REDIS_URL = good_url
        billed_before = billed_micro_usd()
        await keeper.keep_once(refused.next_try)
        assert journal.pending[request_id].taken_at is not None
        # The pipeline counted it deferred; billed now, it is in /metrics' billed total.
        assert billed_micro_usd() - billed_before == cost_of(MODEL, usage)
        await writer.drain()
        await keeper.keep_once(time.time())
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


def test_the_route_is_written_with_the_entrys_next_line_and_not_before_an_outcome(tmp_path, monkeypatch):
    journal = Journal(tmp_path)
    workspace_id = uuid.uuid4()
    streamed, whole = opened(journal, workspace_id), opened(journal, workspace_id)
    writes: list[bytes] = []
    append = journal.segment.append
    monkeypatch.setattr(journal.segment, "append", lambda data: (writes.append(data), append(data)))

    journal.routed(request_id=streamed, provider="sandbox", upstream_model_id="sandbox-pro")
    journal.routed(request_id=whole, provider="sandbox", upstream_model_id="sandbox-pro")
    assert writes == []  # a cut-off now bills nothing: the route alone is not worth a write
    journal.delivered(request_id=streamed, count=4)
    journal.delivered(request_id=streamed, count=9)
    journal.settling(
        request_id=whole, outcome=Outcome(status="completed", usage=Usage(3, 2), provider="sandbox")
    )

    route_first, then_delivered, settled = writes
    assert route_first.count(b"\n") == 2 and route_first.startswith(b'{"t":"r"') and b'"n":4' in route_first
    assert b'"t":"r"' not in then_delivered + settled  # once, and not beside an outcome that names it
    read = read_entries(journal.segment.path.read_bytes())
    assert (read[streamed].provider, read[streamed].upstream_model_id, read[streamed].delivered) == (
        "sandbox",
        "sandbox-pro",
        9,
    )
    assert json.loads(read[whole].outcome or b"{}")["provider"] == "sandbox"


def test_compaction_keeps_only_what_is_pending(tmp_path):
    journal = Journal(tmp_path)
    workspace_id = uuid.uuid4()
    done = [opened(journal, workspace_id) for _ in range(50)]
    waiting = opened(journal, workspace_id)
    journal.delivered(request_id=waiting, count=3)
    for request_id in done:
        journal.taken(request_id=request_id, durable=True)
    old = journal.segment.path

    journal.compact()

    assert not old.exists()
    kept = read_entries(journal.segment.path.read_bytes())
    assert list(kept) == [waiting] and kept[waiting].delivered == 3
    assert kept[waiting].header == journal.pending[waiting].header


def test_entries_share_their_callers_and_models_json_and_the_segment_has_it_whole(tmp_path):
    """A busy process holds thousands of entries until PostgreSQL has their bills (~1 s of its requests):
    each keeps only its own bytes around the caller's and the model's JSON, the objects every request of
    that key and model shares. The segment has the header whole, and is read back as the same settlement."""
    journal = Journal(tmp_path)
    caller = key_less_caller(uuid.uuid4())
    request_ids = [uuid.uuid4().hex for _ in range(2)]
    for request_id in request_ids:
        pieces = settlement_header(
            request_id=request_id, caller=caller, model=MODEL, ingress_format="messages", streamed=False,
            end_user='a "quoted" user',
        )  # fmt: skip
        journal.opened(request_id=request_id, header=pieces, prompt_estimate=PROMPT_ESTIMATE)
    first, second = (journal.pending[request_id] for request_id in request_ids)
    assert first.header_pieces[1] is second.header_pieces[1] is caller.settlement_json
    assert first.header_pieces[3] is second.header_pieces[3] is MODEL.settlement_json
    outcome = Outcome(status="completed", usage=Usage(prompt_tokens=12, completion_tokens=7))
    journal.settling(request_id=request_ids[0], outcome=outcome)

    read_back = read_entries(journal.segment.path.read_bytes())[request_ids[0]].settlement()

    expected = Settlement(
        request_id=request_ids[0], caller=caller, model=MODEL, ingress_format="messages", streamed=False,
        end_user='a "quoted" user', outcome=outcome,
    )  # fmt: skip
    assert read_back == expected == first.settlement()
    assert read_entries(journal.segment.path.read_bytes())[request_ids[1]].header == second.header


def test_entries_read_back_share_their_callers_and_models_json(tmp_path):
    """Entries read back (spilled in an outage, or adopted from a dead process) share the caller's and the
    model's JSON as live ones do: up to GATEWAY_JOURNAL_MAX_IN_MEMORY of them come back at once."""
    journal = Journal(tmp_path)
    callers = [key_less_caller(uuid.uuid4()) for _ in range(2)]
    live = {}
    for n in range(6):
        request_id = uuid.uuid4().hex
        pieces = settlement_header(
            request_id=request_id, caller=callers[n % 2], model=MODEL, ingress_format="messages",
            streamed=bool(n % 3), end_user=None if n else "é \"user\"",
        )  # fmt: skip
        journal.opened(request_id=request_id, header=pieces, prompt_estimate=PROMPT_ESTIMATE)
        live[request_id] = journal.pending[request_id]

    read_back = read_entries(journal.segment.path.read_bytes())

    assert [entry.header for entry in read_back.values()] == [entry.header for entry in live.values()]
    first, second, third = list(read_back.values())[:3]
    assert first.header_pieces[1] is third.header_pieces[1] is not second.header_pieces[1]
    assert first.header_pieces[3] is second.header_pieces[3] is third.header_pieces[3]
    assert first.header_pieces[1] == callers[0].settlement_json


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

    def postgres_down(**_):
        raise OperationalError("connection refused")

    monkeypatch.setattr(keeper_module, "billed_in_postgres", postgres_down)
    synced = []
    monkeypatch.setattr(journal, "sync", lambda: synced.append(journal.segment.path))
    before = journal.segment.path

    run(Keeper(journal).keep_once(time.time()))

    assert list(journal.pending) == [request_id]
    assert journal.segment.path != before and synced == [journal.segment.path]
    assert list(read_entries(journal.segment.path.read_bytes())) == [request_id]


def test_compaction_comes_at_growing_sizes_not_at_every_pass(tmp_path, monkeypatch):
    """Due past COMPACT_BYTES and COMPACT_GROWTH times what the last compaction left: with entries that do
    not leave (PostgreSQL down), a rewrite of them all waits until the segment has grown that much again,
    where it came at every keeper pass."""
    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 10_000)
    journal = Journal(tmp_path)
    workspace_id = uuid.uuid4()
    while journal.segment.size() <= 10_000:
        assert not journal.due_for_compaction()
        opened(journal, workspace_id)
    assert journal.due_for_compaction()

    journal.compact()

    left = journal.segment.size()
    assert left == journal.compacted_bytes > 10_000  # everything is still pending, so all of it is kept
    while journal.segment.size() <= journal_module.COMPACT_GROWTH * left:
        assert not journal.due_for_compaction()
        opened(journal, workspace_id)
    assert journal.due_for_compaction()


def test_a_torn_last_line_is_skipped(tmp_path):
    journal = Journal(tmp_path)
    request_id = opened(journal, uuid.uuid4())
    journal.segment.append(b'{"t":"s","id":"%s","o":{"sta' % request_id.encode())

    entries = read_entries(journal.segment.path.read_bytes())

    assert list(entries) == [request_id] and entries[request_id].outcome is None

"""The settlement journal's segment (ADR 0010): what each fact writes and when, compaction, the entries'
shared JSON, and a segment read back."""

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable

import pytest

from gateway.canonical import Usage
from gateway.metering import Outcome, Settlement
from gateway.metering import journal as journal_module
from gateway.metering.base import settlement_header
from gateway.metering.journal import Journal, orphans, read_entries
from gateway.metering.keeper import Keeper
from tests.factories import key_less_caller
from tests.gateway.journal_support import PROMPT_ESTIMATE, die, opened
from tests.gateway.redis_meter_support import MODEL, run

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


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


def test_a_journal_closed_with_entries_pending_leaves_only_those_for_its_heir(tmp_path):
    """Its heir settles again every entry it reads: a segment of a busy process's thousands of finished
    requests (before, up to COMPACT_BYTES of them) is left holding just the ones still pending."""
    journal = Journal(tmp_path)
    workspace_id = uuid.uuid4()
    done = [opened(journal, workspace_id) for _ in range(50)]
    waiting = opened(journal, workspace_id)
    for request_id in done:
        journal.taken(request_id=request_id, durable=True)

    journal.close()

    [left] = tmp_path.glob("*.journal")
    assert list(read_entries(left.read_bytes())) == [waiting]


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


SLOW_FSYNC_SECONDS = 0.3  # a network volume under load
STALL_BOUND_SECONDS = 0.2  # on the loop, each of these took the whole SLOW_FSYNC_SECONDS and more


def slow_fsyncs(monkeypatch) -> None:
    """Every segment's fsync (the live one's, and those of spill segments made from now on) is slow."""
    sync = journal_module.Segment.sync

    def slow_sync(segment: journal_module.Segment) -> None:
        time.sleep(SLOW_FSYNC_SECONDS)
        sync(segment)

    monkeypatch.setattr(journal_module.Segment, "sync", slow_sync)


async def loop_stall_during(work: Awaitable[object]) -> float:
    """How late the event loop let a request's 10 ms ticks come while `work` ran; it must have waited
    for the disk (SLOW_FSYNC_SECONDS) all the same."""
    stalled = 0.0

    async def ticking() -> None:
        nonlocal stalled
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            stalled = max(stalled, time.monotonic() - started - 0.01)

    ticks = asyncio.create_task(ticking())
    await asyncio.sleep(0.05)
    work_started = time.monotonic()
    await work
    assert time.monotonic() - work_started >= SLOW_FSYNC_SECONDS  # the work did wait for the disk
    await asyncio.sleep(0.05)  # a tick that was due during the work measures how late it came
    ticks.cancel()
    return stalled


def finished(journal: Journal, count: int) -> list[str]:
    """`count` requests over, their outcomes in the journal, no meter asked yet."""
    request_ids = [opened(journal, uuid.uuid4()) for _ in range(count)]
    for request_id in request_ids:
        journal.settling(request_id=request_id, outcome=Outcome(status="completed", usage=Usage(3, 2)))
    return request_ids


def test_the_keepers_fsync_does_not_stall_the_event_loop(tmp_path, monkeypatch, settings):
    """A disk whose fsync takes 300 ms: the keeper's pass waits for it, the requests of its process do
    not."""
    settings.GATEWAY_METER = "sql"
    journal = Journal(tmp_path)
    slow_fsyncs(monkeypatch)

    assert run(loop_stall_during(Keeper(journal).keep_once(time.time()))) < STALL_BOUND_SECONDS
    journal.close()


def test_a_spill_is_written_and_synced_off_the_event_loop(tmp_path, monkeypatch, settings):
    """While PostgreSQL is down a busy worker spills ~13 MB every few seconds: its write and fsync on the
    loop stalled every request of the process for as long."""
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 2
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 2)
    journal = Journal(tmp_path)
    request_ids = finished(journal, 4)
    slow_fsyncs(monkeypatch)

    assert run(loop_stall_during(journal.spill())) < STALL_BOUND_SECONDS
    ((segment, count),) = journal.spilled
    assert count == 2 and list(journal.pending) == request_ids[2:]
    assert list(read_entries(segment.path.read_bytes())) == request_ids[:2]
    journal.close()


def test_an_entry_taken_for_good_while_its_chunk_is_spilled_is_not_kept(tmp_path, monkeypatch, settings):
    """A request's settlement confirmed durable while its chunk was on its way to the disk: it is gone from
    memory (and from the spill segment's future: PostgreSQL has it), not a KeyError for the keeper."""
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 2
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 2)
    journal = Journal(tmp_path)
    request_ids = finished(journal, 4)
    holding = journal_module.Segment.holding

    def holding_while_a_request_settles(directory, data, *, synced):
        journal.taken(request_id=request_ids[0], durable=True)  # the loop went on meanwhile
        return holding(directory, data, synced=synced)

    monkeypatch.setattr(journal_module.Segment, "holding", holding_while_a_request_settles)

    assert run(journal.spill()) == 2
    assert list(journal.pending) == request_ids[2:] and journal.spilled_entries == 2
    journal.close()


def test_an_adoption_is_synced_off_the_event_loop(tmp_path, monkeypatch, settings):
    dead = Journal(tmp_path)
    request_ids = finished(dead, 3)
    die(dead)
    heir = Journal(tmp_path)
    (orphan,) = orphans(tmp_path, heir.segment.path)
    slow_fsyncs(monkeypatch)

    assert run(loop_stall_during(heir.adopt(orphan))) < STALL_BOUND_SECONDS
    assert list(heir.pending) == request_ids and not orphan.path.exists()
    heir.close()


def test_a_spill_brought_back_is_synced_off_the_event_loop(tmp_path, monkeypatch, settings):
    settings.GATEWAY_JOURNAL_MAX_IN_MEMORY = 2
    monkeypatch.setattr(journal_module, "SPILL_CHUNK", 2)
    journal = Journal(tmp_path)
    request_ids = finished(journal, 4)
    assert run(journal.spill()) == 2
    journal.taken(request_id=request_ids[2], durable=True)
    journal.taken(request_id=request_ids[3], durable=True)  # PostgreSQL answers again: room
    ((segment, _),) = journal.spilled
    slow_fsyncs(monkeypatch)

    async def brought_back() -> None:
        await journal.unspill(await journal.read_spilled(), set(), time.time())

    assert run(loop_stall_during(brought_back())) < STALL_BOUND_SECONDS
    assert list(journal.pending) == request_ids[:2] and not journal.spilled and not segment.path.exists()
    journal.close()


def test_the_keepers_compaction_drops_the_old_segment_only_once_the_new_one_is_synced(
    tmp_path, monkeypatch, settings
):
    """The new segment is synced in a thread while requests go on; until it is on the disk the old one stays
    (locked: no sibling adopts it), and a sync that fails keeps it until one succeeds."""
    settings.GATEWAY_METER = "sql"
    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 2_000)
    journal = Journal(tmp_path)
    workspace_id = uuid.uuid4()
    while not journal.due_for_compaction():
        opened(journal, workspace_id)
    old = journal.segment.path
    seen_at_sync: list[bool] = []  # whether the old segment was still there, at each sync
    real_sync = journal_module.Segment.sync

    def sync(segment: journal_module.Segment) -> None:
        seen_at_sync.append(old.exists())
        if len(seen_at_sync) == 1:
            raise OSError("the disk is full")
        real_sync(segment)

    monkeypatch.setattr(journal_module.Segment, "sync", sync)
    keeper = Keeper(journal)

    run(keeper.keep_once(time.time()))  # compacts; its sync fails

    assert journal.segment.path != old and old.exists() and journal.retired
    assert list(orphans(tmp_path, journal.segment.path)) == []  # still locked: no sibling adopts it
    assert list(read_entries(journal.segment.path.read_bytes())) == list(journal.pending)

    run(keeper.keep_once(time.time()))  # not due again; the sync succeeds

    assert seen_at_sync == [True, True] and not old.exists() and not journal.retired
    journal.close()

"""The settlement journal's keeper (ADR 0010). Every second, in each gateway event loop, it:

- adopts the journals of processes that died, billing the requests they never finished for what was delivered;
- settles what no meter has taken yet (Redis or PostgreSQL was down), with a growing pause between tries;
- forgets what PostgreSQL has, and settles again what the Redis meter took but PostgreSQL still lacks a while
  later (Redis restarted without it); settling is idempotent by request id, so this never bills twice;
- past the journal's limit in memory (PostgreSQL down for a while), moves the oldest finished entries to spill
  segments, and brings them back a chunk a pass once PostgreSQL answers and there is room;
- compacts the segment when it has grown enough, and fsyncs it, whether or not PostgreSQL answered;
- every third of RESERVATION_TTL_SECONDS, renews the holds of the requests still under way, so that the
  reaper does not release a hold while its request runs (ADR 0028).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from django.conf import settings

from billing.selectors import accounts_existing
from core.processes import release_free_memory
from gateway import metrics
from gateway.http import in_thread
from gateway.metering import get_meter, writer
from gateway.metering import journal as journal_file
from gateway.metering.journal import Entry, Journal, orphans
from gateway.outage import PostgresDown, attempted
from gateway.selectors import recorded_request_ids

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CONFIRM_SECONDS = 2.0  # the longest a pass waits for PostgreSQL's confirmations
# An entry the meter took is first asked about once the writer has had a flush to write it (writer.py), its
# records gathered at a light load included: asked at once, a third of them were not there yet and were
# asked again a pass later (~1.3 asks a request).
CONFIRM_AFTER_SECONDS = writer.GATHER_SECONDS + 2 * writer.IDLE_SECONDS
MAX_RETRY_SECONDS = 60.0
# While settlements wait out their backoff and none is due, one of them is tried this often: a meter that
# answers again takes them all then, not each at the end of its backoff (up to MAX_RETRY_SECONDS later).
PROBE_SECONDS = 5.0
CONCURRENT_SETTLEMENTS = 32


class Keeper:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.renewed_at = time.time()  # when the holds under way were last renewed
        self.probed_at = 0.0  # when a settlement not yet due was last tried, to find the meter answering
        # On shutdown, after the last pass: the process's writer drains what the meter took (stop_keeper)
        self.drain_writer: Callable[[], Awaitable[object]] | None = None

    async def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    await self.keep_once(time.time())
                except Exception:
                    logger.exception("journal: the keeper's pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), TICK_SECONDS)
            # Shutting down: requests still open here will never finish.
            try:
                await self.keep_once(time.time(), cut_off_open=True)
            except Exception:
                logger.exception("journal: the last pass failed; the next process adopts what is left")
            if self.drain_writer is not None:
                try:
                    await self.drain_writer()
                    await self.forget_written()
                except Exception:
                    logger.exception("journal: forgetting what PostgreSQL has at shutdown failed")
        finally:
            self.journal.close()

    async def forget_written(self) -> None:
        """Once a stopping process's writer has drained: what PostgreSQL now has leaves the journal, so a
        clean stop leaves no segment behind, nothing for the next process to adopt, settle again and warn
        of as a dead process's. Another writer may still be writing some (a sibling worker's took them from
        the queue, or the writer is a process of its own): asked again every writer's beat, for as long as a
        pass's confirmations may take. What PostgreSQL still lacks then stays for the next process."""
        if get_meter().durable:
            return
        try:
            async with asyncio.timeout(CONFIRM_SECONDS):
                while taken := self._taken():
                    done = await in_thread(attempted, recorded_request_ids, request_ids=taken)
                    for request_id in done:
                        del self.journal.pending[request_id]
                    if len(done) < len(taken):
                        await asyncio.sleep(writer.IDLE_SECONDS)
        except TimeoutError:
            pass  # left for the next process, as every entry was before
        except Exception as exc:
            logger.warning("journal: PostgreSQL could not confirm the settled entries at shutdown (%r)", exc)

    def _taken(self) -> list[str]:
        """The request ids of the entries a meter took, that PostgreSQL may not have yet."""
        return [entry.request_id for entry in self.journal.pending.values() if entry.taken_at is not None]

    async def keep_once(self, now: float, *, cut_off_open: bool = False) -> None:
        journal = self.journal
        moved = False  # entries went to or came from disk in this pass
        for orphan in orphans(journal.directory, journal.segment.path):
            adopted = await journal.adopt(orphan)
            moved = True
            logger.warning(
                "journal: adopted %d settlements of a dead process (%s)", len(adopted), orphan.path
            )
            if journal.over_limit():
                break  # a dead process's spill segments come a few a pass, not all into memory at once
        if cut_off_open:
            for entry in journal.pending.values():
                if entry.outcome is None:
                    entry.outcome = entry.cut_off(now)
                if entry.taken_at is None:  # whatever its backoff: no later pass here will try it
                    entry.next_try = 0.0
        await self._settle_due(now)
        if not cut_off_open:
            await self._renew_holds(now)
        try:
            # Bounded: a pass that waited out the pool's timeout (the outage's probe) left the segment
            # unsynced that long. What it asked is asked again next pass (nothing changed before the answer).
            async with asyncio.timeout(CONFIRM_SECONDS):
                if not get_meter().durable:
                    await self._confirm(now)
                moved = await self._unspill(now) or moved
        except PostgresDown:
            pass  # known down, and said so once (gateway/outage.py): the entries wait, as below, unlogged
        except Exception as exc:
            # PostgreSQL is down: the entries wait for a later pass, and this one still spills, compacts and
            # fsyncs (it used to end here, and left the segment unsynced for the whole outage).
            logger.warning("journal: PostgreSQL could not confirm the settled entries (%r)", exc)
        if spilled := await journal.spill():
            moved = True
            logger.warning(
                "journal: %d settlements wait on disk (%d in all) for PostgreSQL to confirm them",
                spilled,
                journal.spilled_entries,
            )
        if journal.due_for_compaction():
            journal.start_compaction()
        # In a thread: a disk whose fsync takes milliseconds (a network volume) would stall every request of
        # the process that long each second. Requests go on appending meanwhile; the next pass, which may
        # compact the segment again, waits for this one.
        await asyncio.to_thread(journal.sync)
        if moved:  # megabytes of lines made and dropped: given back, or the worker keeps its high-water mark
            release_free_memory()

    async def _settle_due(self, now: float) -> None:
        waiting = [
            entry
            for entry in self.journal.pending.values()
            if entry.outcome is not None and entry.taken_at is None
        ]
        due = [entry for entry in waiting if entry.next_try <= now]
        if not due and now - self.probed_at >= PROBE_SECONDS:
            due = await self._probe(waiting, now)
        for start in range(0, len(due), CONCURRENT_SETTLEMENTS):
            chunk = due[start : start + CONCURRENT_SETTLEMENTS]
            taken = await asyncio.gather(*(self._settle(entry) for entry in chunk))
            if not any(taken):
                return  # the meter is down: the rest waits for the next pass

    async def _probe(self, waiting: list[Entry], now: float) -> list[Entry]:
        """With none due, one settlement a meter refused (not one its request is settling itself now) is
        tried before its time; if the meter takes it, the others it refused are due now: returned."""
        refused = [entry for entry in waiting if entry.attempts]
        if not refused:
            return []
        self.probed_at = now
        probe = min(refused, key=lambda entry: entry.next_try)
        if not await self._settle(probe, probe=True):
            return []
        logger.warning("journal: the meter answers again; settling the %d it refused", len(refused))
        return [entry for entry in refused if entry is not probe]

    async def _renew_holds(self, now: float) -> None:
        """A hold expires RESERVATION_TTL_SECONDS after it was made unless renewed: every third of that,
        the requests under way for a third of it or more have theirs renewed (a request renewed at this pass
        or made since has at least two thirds of the TTL left at the next)."""
        every = settings.RESERVATION_TTL_SECONDS / 3
        if now - self.renewed_at < every:
            return
        self.renewed_at = now
        under_way = [
            (entry.workspace_id(), entry.request_id)
            for entry in self.journal.pending.values()
            if entry.outcome is None and now - entry.opened_at >= every
        ]
        if not under_way:
            return
        try:
            renewed = await get_meter().renew(under_way)
        except Exception as exc:  # the meter is down: its reaper is not reaping either (the same Redis)
            logger.warning(
                "journal: renewing %d holds failed (%s); next try in %.0f s", len(under_way), exc, every
            )
            return
        logger.info("journal: renewed %d of %d holds of requests under way", renewed, len(under_way))

    async def _settle(self, entry: Entry, *, probe: bool = False) -> bool:
        """`probe`: tried before its time to find out whether the meter answers; a failure changes nothing."""
        meter = get_meter()
        settlement = entry.settlement()
        try:
            cost = await meter.settle(settlement)
        except Exception as exc:
            if probe:
                logger.info("journal: the meter still refuses settlements (%s)", exc)
                return False
            retry_in = min(MAX_RETRY_SECONDS, 2.0**entry.attempts)
            self.journal.refused(request_id=entry.request_id, retry_in=retry_in)
            log = logger.critical if entry.attempts > 10 else logger.warning
            log("journal: settling %s failed (%s); next try in %.0f s", entry.request_id, exc, retry_in)
            return False
        self.journal.taken(request_id=entry.request_id, durable=meter.durable)
        if entry.resettles == 0:  # settled again (the meter lost it), it was counted the first time
            metrics.billed(settlement.model.slug, settlement.outcome, cost)
        return True

    async def _unspill(self, now: float) -> bool:
        """The oldest spill segment back in memory, when there is room, but for what PostgreSQL has billed.
        True when one came back."""
        if not self.journal.has_room_to_unspill():
            return False
        entries = await self.journal.read_spilled()
        billed = await in_thread(attempted, billed_in_postgres, entries=entries, now=now)
        await self.journal.unspill(entries, billed, now)
        return True

    async def _confirm(self, now: float) -> None:
        taken_by = now - CONFIRM_AFTER_SECONDS
        taken = [
            entry
            for entry in self.journal.pending.values()
            if entry.taken_at is not None and entry.taken_at <= taken_by
        ]
        if not taken:
            return
        # PostgreSQL known to be down: PostgresDown at once (gateway/outage.py), not the pool's timeout.
        done = await in_thread(attempted, billed_in_postgres, entries=taken, now=now)
        due = [entry for entry in taken if entry.request_id not in done and entry.next_try <= now]
        # Those the meter still holds are on their way, behind a writer's backlog (after an outage, all of
        # them): settling each again would be a no-op, at ~60 µs of this loop's CPU each.
        held = await get_meter().still_held([(entry.workspace_id(), entry.request_id) for entry in due])
        resettled = 0
        for entry in taken:
            if entry.request_id in done:
                del self.journal.pending[entry.request_id]
            elif entry.request_id in held:
                # Asked again after as long as it has waited so far (10 s, 20 s, 40 s, … an hour at most):
                # a backlog of hours is not asked about 100,000 entries at a time every 10 s.
                waited = now - (entry.taken_at or now)
                entry.next_try = now + min(
                    journal_file.MAX_RESETTLE_SECONDS, max(journal_file.RESETTLE_SECONDS, waited)
                )
            elif entry.next_try <= now:
                # The meter lost it (Redis restarted without it): settle again.
                entry.taken_at, entry.next_try = None, 0.0
                entry.resettles += 1
                resettled += 1
        if resettled:
            logger.warning("journal: %d settlements the meter lost; settling them again", resettled)


def billed_in_postgres(*, entries: list[Entry], now: float) -> set[str]:
    """The request ids among `entries` that PostgreSQL has a generation for, or, of those due to be settled
    again, whose workspace is gone (its writer dropped them: there is nothing left to bill). The others are
    still on their way to PostgreSQL: reading their headers and their workspaces every pass would be work
    for nothing (most entries of a busy process, each second)."""
    done = recorded_request_ids(request_ids=[entry.request_id for entry in entries])
    rest = {
        entry.request_id: entry.workspace_id()
        for entry in entries
        if entry.request_id not in done and entry.next_try <= now
    }
    if rest:
        existing = accounts_existing(workspace_ids=set(rest.values()))
        done |= {request_id for request_id, workspace_id in rest.items() if workspace_id not in existing}
    return done


_keepers: dict[asyncio.AbstractEventLoop, Keeper] = {}


def loop_journal() -> Journal:
    """The running event loop's journal; its keeper starts with it."""
    loop = asyncio.get_running_loop()
    keeper = _keepers.get(loop)
    if keeper is None:
        keeper = _keepers[loop] = Keeper(Journal(Path(settings.GATEWAY_JOURNAL_DIR)))
        keeper.task = loop.create_task(keeper.run())
        keeper.task.add_done_callback(lambda _: _keepers.pop(loop, None))
    return keeper.journal


async def stop_keeper(*, drain_writer: Callable[[], Awaitable[object]]) -> None:
    """On shutdown: a last pass, settling everything it can; then `drain_writer` (this process's metering
    writer's drain, a no-op without one) puts what the meter took in PostgreSQL, and those entries leave the
    journal, which is closed (and removed if nothing is pending)."""
    keeper = _keepers.get(asyncio.get_running_loop())
    if keeper is None or keeper.task is None:
        await drain_writer()
        return
    keeper.drain_writer = drain_writer
    keeper.stop.set()
    await keeper.task

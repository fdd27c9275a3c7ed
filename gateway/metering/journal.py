"""The settlement journal (design §4.4, ADR 0010): each admitted request is on this machine's disk from its
admission until its bill is in PostgreSQL, so neither an outage nor a crash loses one.

Every gateway event loop (one per uvicorn worker) appends to a segment file of its own in
`settings.GATEWAY_JOURNAL_DIR` and holds an exclusive flock on it while it lives: a segment nobody holds
belongs to a process that died. One JSON line per fact, each written whole by one write(2) (a routed line
by its next line's), which survives the process being killed (the kernel has it); the keeper fsyncs every
second (in a thread: requests do not wait for the disk), so a machine crash loses at most the last second,
like Redis's `appendfsync everysec`.

    {"t":"o","id":…,"at":…,"pe":…,"h":{…}}  opened: the settlement's header (caller, model with the prices
                                             it was admitted at, format) and the prompt estimate
    {"t":"r","id":…,"p":…,"u":…}             routed: the provider and upstream model answering (in the
                                             write of the entry's next line; not before an outcome)
    {"t":"n","id":…,"n":N}                   delivered: N content deltas are on their way to the client
    {"t":"s","id":…,"o":{…}}                 settling: the outcome, before a meter is asked to bill it
    {"t":"m","id":…,"at":…}                  taken: the Redis meter took the settlement (written when the
                                             entry moves to another segment: compacted or spilled)

`Journal.pending` mirrors the segment in memory (its entries and their lines: journal_entries.py);
gateway/metering/keeper.py acts on it. While PostgreSQL
cannot confirm the bills, nothing leaves `pending`: past GATEWAY_JOURNAL_MAX_IN_MEMORY entries the oldest
finished ones move to spill segments of their own (`Journal.spill`), and come back a chunk at a time once it
can (`Journal.unspill`).
"""

import asyncio
import dataclasses
import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from core.encoding import compact_json
from gateway.canonical import Usage
from gateway.metering.base import Outcome
from gateway.metering.journal_entries import (
    Entry,
    delivered_line,
    opened_line,
    read_entries,
    routed_line,
    settling_line,
    stepped_line,
)

logger = logging.getLogger(__name__)

SUFFIX = ".journal"
# The Redis meter's records reach PostgreSQL within a second or so; one still missing this long after the
# meter took it is settled again, then after twice as long, and so on up to an hour (the meter's own replay
# guard lasts an hour, so until then a second settlement is a no-op).
RESETTLE_SECONDS = 10.0
MAX_RESETTLE_SECONDS = 3600.0
FIRST_TRY_SECONDS = 5.0  # the request settles itself first; the keeper steps in if it has not by then
# A segment is rewritten with only what is pending once it is past COMPACT_BYTES and COMPACT_GROWTH times what
# the last rewrite left in it. A busy worker appends ~2 MB a second and holds ~1 s of requests until
# PostgreSQL has their bills: past a fixed 1 MiB it was rewritten at every keeper pass (~10 ms of the loop's
# CPU for 3,500 entries), and while PostgreSQL is down, with the pending entries growing, each rewrite wrote
# them all again. At growing sizes the rewrites' cost stays proportional to what is appended (as Redis's
# AOF rewrites). The price: an adoption after a crash reads up to this much, and settles the entries
# already billed again, a no-op each.
COMPACT_BYTES = 8 << 20
COMPACT_GROWTH = 4
# While PostgreSQL is down no bill is confirmed, so every request stays pending: ~1.3 KB an entry, ~1.7 GB a
# worker after ten minutes at 2,300 requests a second. Past settings.GATEWAY_JOURNAL_MAX_IN_MEMORY entries
# the oldest finished ones are written to spill segments of SPILL_CHUNK entries each, synced, and dropped
# from memory. A spill segment is locked like the live one, so a process that dies leaves it to be adopted
# like any other.
SPILL_CHUNK = 10_000


class Segment:
    """One event loop's journal file, exclusively locked while it is in use."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def create(cls, directory: Path) -> "Segment":
        while True:
            path = directory / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            # Another process may have found the new file unlocked and taken it for a dead one's: then it is
            # locked, or gone, and this process picks another name.
            if _lock(fd) and _is_at(fd, path):
                return cls(fd, path)
            os.close(fd)

    @classmethod
    def holding(cls, directory: Path, data: bytes, *, synced: bool) -> "Segment":
        """A new segment holding `data`, synced too with `synced` (a spill segment's: run in a thread); a disk
        that fails leaves no file behind."""
        segment = cls.create(directory)
        try:
            segment.append(data)
            if synced:
                segment.sync()
        except OSError:
            segment.close(remove=True)
            raise
        return segment

    def append(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.fd, data) :]

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self, *, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # releases the lock


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_at(fd: int, path: Path) -> bool:
    """Whether `path` still names the open file `fd` (not unlinked or replaced meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


@dataclass(slots=True)
class Orphan:
    """A dead process's segment, locked by this one until it is adopted."""

    path: Path
    fd: int
    entries: dict[str, Entry]
    ended_at: float  # when its process last wrote to it


def orphans(directory: Path, own: Path) -> Iterator[Orphan]:
    """The segments of processes that died: those nobody holds a lock on."""
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if path == own:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        if not (_lock(fd) and _is_at(fd, path)):
            os.close(fd)
            continue
        with open(os.dup(fd), "rb") as segment:
            data = segment.read()
        yield Orphan(path, fd, read_entries(data), os.fstat(fd).st_mtime)


class Journal:
    """One event loop's journal: its segment, and the entries in it not yet in PostgreSQL."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment = Segment.create(directory)
        self.pending: dict[str, Entry] = {}
        self.compacted_bytes = 0  # what the last compaction left in the segment
        self.spilled: list[tuple[Segment, int]] = []  # spill segments, oldest first, with their entry counts
        self.retired: list[Segment] = []  # segments compacted away, removed once the new one is synced

    def _append(self, data: bytes) -> None:
        try:
            self.segment.append(data)
        except OSError:
            # The entry is still kept in memory and settled from there; only a crash now would lose it.
            logger.critical("journal: writing %s failed", self.segment.path, exc_info=True)

    def opened(self, *, request_id: str, header: bytes | tuple[bytes, ...], prompt_estimate: int) -> None:
        """`header`: the settlement's JSON but its outcome, whole or in the pieces of
        metering.base.settlement_header (kept as they are: its caller's and model's pieces are shared)."""
        pieces = (header,) if isinstance(header, bytes) else header
        entry = Entry(request_id, pieces, prompt_estimate, time.time())
        self.pending[request_id] = entry
        self._append(opened_line(request_id, pieces, prompt_estimate, entry.opened_at))

    def routed(self, *, request_id: str, provider: str, upstream_model_id: str) -> None:
        """The route answering. Its line goes with the entry's next one, in the same write: until something is
        delivered a cut-off bills nothing, and an outcome names its route itself (a write saved a request)."""
        entry = self.pending.get(request_id)
        if entry is not None:
            entry.provider, entry.upstream_model_id = provider, upstream_model_id
            entry.route_unwritten = True

    def _with_route(self, entry: Entry, line: bytes) -> bytes:
        """`line`, after the entry's routed line if that is not written yet."""
        if not entry.route_unwritten:
            return line
        entry.route_unwritten = False
        return routed_line(entry.request_id, entry.provider, entry.upstream_model_id) + line

    def delivered(self, *, request_id: str, count: int) -> None:
        entry = self.pending.get(request_id)
        if entry is not None:
            entry.delivered = count
            self._append(self._with_route(entry, delivered_line(request_id, count)))

    def stepped(
        self, *, request_id: str, usage: Usage | None, tool_costs: dict[str, int], delivered: int
    ) -> None:
        """A step of a request with server tools finished (and its calls ran): what a cut-off then owes."""
        entry = self.pending.get(request_id)
        if entry is not None:
            counted = Usage(0, 0) if usage is None else usage
            entry.stepped = {"u": dataclasses.asdict(counted), "tc": tool_costs, "n": delivered}
            self._append(self._with_route(entry, stepped_line(request_id, entry.stepped)))

    def settling(self, *, request_id: str, outcome: Outcome) -> None:
        entry = self.pending.get(request_id)
        if entry is not None:
            entry.outcome = compact_json(outcome)
            entry.next_try = time.time() + FIRST_TRY_SECONDS
            entry.route_unwritten = False  # the outcome names its route
            self._append(settling_line(request_id, entry.outcome))

    def taken(self, *, request_id: str, durable: bool) -> None:
        """A meter accepted the settlement; one that is in PostgreSQL already is done with."""
        if durable:
            self.pending.pop(request_id, None)
        elif (entry := self.pending.get(request_id)) is not None:
            entry.taken_at = time.time()
            entry.next_try = entry.taken_at + min(MAX_RESETTLE_SECONDS, RESETTLE_SECONDS * 2**entry.resettles)

    def refused(self, *, request_id: str, retry_in: float) -> None:
        entry = self.pending.get(request_id)
        if entry is not None:
            entry.attempts += 1
            entry.next_try = time.time() + retry_in

    async def adopt(self, orphan: Orphan) -> list[Entry]:
        """Take over a dead process's entries: those it never finished get their cut-off outcome. They are
        in this segment, synced (in a thread), before the orphan's file goes; a crash in between settles
        them twice, which bills once (settling is idempotent by request id)."""
        adopted = []
        for entry in orphan.entries.values():
            if entry.request_id in self.pending:
                continue
            if entry.outcome is None:
                entry.outcome = entry.cut_off(orphan.ended_at)
            entry.taken_at = None  # settled again, whatever meter this process has: a no-op if billed
            self.pending[entry.request_id] = entry
            adopted.append(entry)
        self._append(b"".join(entry.lines() for entry in adopted))
        await asyncio.to_thread(self.segment.sync)
        orphan.path.unlink(missing_ok=True)
        os.close(orphan.fd)
        return adopted

    def due_for_compaction(self) -> bool:
        return self.segment.size() > max(COMPACT_BYTES, COMPACT_GROWTH * self.compacted_bytes)

    def compact(self) -> None:
        """Start a new segment holding only what is pending, then drop the old one."""
        self.start_compaction()
        self.sync()

    def start_compaction(self) -> None:
        """Write what is pending to a new segment, which takes the appends from now on. The old one is
        retired: kept, locked, until the new one is synced (`sync`), so that a crash meanwhile leaves both to
        an heir (which settles their entries twice: a no-op), never neither."""
        lines = b"".join(entry.lines() for entry in self.pending.values())
        fresh = Segment.holding(self.directory, lines, synced=False)
        self.compacted_bytes = len(lines)
        self.retired.append(self.segment)
        self.segment = fresh

    @property
    def spilled_entries(self) -> int:
        return sum(count for _, count in self.spilled)

    def over_limit(self) -> bool:
        return len(self.pending) >= settings.GATEWAY_JOURNAL_MAX_IN_MEMORY

    async def spill(self) -> int:
        """Past GATEWAY_JOURNAL_MAX_IN_MEMORY pending entries, the oldest finished ones (an open request's
        entry still changes) go to spill segments, whole chunks of SPILL_CHUNK, each written and synced in a
        thread (~13 MB: on the loop, a slow disk stalled every request of the process for as long) before
        its entries leave memory. Returns how many went.

        Meanwhile requests go on: a finished entry only learns that a meter took it (or refused it). One
        taken as durable is gone already; one whose news missed the chunk is settled again when it comes
        back, a no-op."""
        excess = len(self.pending) - settings.GATEWAY_JOURNAL_MAX_IN_MEMORY
        if excess <= 0:
            return 0
        wanted = -(-excess // SPILL_CHUNK) * SPILL_CHUNK
        oldest = [entry for entry in self.pending.values() if entry.outcome is not None][:wanted]
        for start in range(0, len(oldest), SPILL_CHUNK):
            chunk = oldest[start : start + SPILL_CHUNK]
            lines = b"".join(entry.lines() for entry in chunk)
            segment = await asyncio.to_thread(Segment.holding, self.directory, lines, synced=True)
            self.spilled.append((segment, len(chunk)))
            for entry in chunk:
                self.pending.pop(entry.request_id, None)
        return len(oldest)

    def has_room_to_unspill(self) -> bool:
        room = settings.GATEWAY_JOURNAL_MAX_IN_MEMORY - len(self.pending)
        return bool(self.spilled) and self.spilled[0][1] <= room

    async def read_spilled(self) -> list[Entry]:
        """The oldest spill segment's entries (to be asked of PostgreSQL, then `unspill`ed), read in a
        thread."""
        segment, _ = self.spilled[0]
        return list(read_entries(await asyncio.to_thread(segment.path.read_bytes)).values())

    async def unspill(self, entries: list[Entry], billed: set[str], now: float) -> None:
        """The oldest spill segment back in memory but for the requests PostgreSQL has billed (`billed`):
        one the meter took is confirmed again after RESETTLE_SECONDS (settled again if still missing), one
        no meter took is settled at the keeper's next pass. They are in this segment, synced, before the
        spill segment goes, synced in a thread (a crash in between leaves both: adopted, settled twice,
        billed once)."""
        back = [
            entry
            for entry in entries
            if entry.request_id not in billed and entry.request_id not in self.pending
        ]
        for entry in back:
            if entry.taken_at is not None:
                entry.taken_at, entry.next_try = now, now + RESETTLE_SECONDS
            else:
                entry.next_try = 0.0
            self.pending[entry.request_id] = entry
        self._append(b"".join(entry.lines() for entry in back))
        await asyncio.to_thread(self.segment.sync)
        segment, _ = self.spilled.pop(0)
        segment.close(remove=True)

    def sync(self) -> None:
        """fsync the segment (the keeper runs it in a thread); then the segments compaction retired go."""
        try:
            self.segment.sync()
        except OSError:
            return  # the retired segments stay: their entries are not on the disk anywhere else yet
        retired, self.retired = self.retired, []
        for segment in retired:
            segment.close(remove=True)

    def close(self) -> None:
        """On shutdown: the segment goes if nothing is pending; otherwise it is compacted to what is pending
        (its heir settles again every entry it reads) and another process adopts it, as it adopts the spill
        segments, which stay."""
        if self.pending:
            try:
                self.compact()
            except OSError:  # the old segment stays whole, its finished entries settled again: a no-op each
                logger.warning("journal: compacting %s at shutdown failed", self.segment.path, exc_info=True)
        self.sync()
        self.segment.close(remove=not self.pending)
        for segment in self.retired:  # the sync failed: left whole to an heir
            segment.close(remove=False)
        self.retired.clear()
        for segment, _ in self.spilled:
            segment.close(remove=False)
        self.spilled.clear()

"""The gateway's Prometheus metrics as recorded (design §6, "Metrics"); gateway/metrics_scrape.py serves them.

Recording is memory only: a request adds to its process's tally, which a thread publishes every second into
prometheus_client's multiprocess files in settings.PROMETHEUS_MULTIPROC_DIR (config/env.py's `metrics_dir`),
and a scrape sums every process's files. A request's path never waits on the network or a file for a
metric.

Labels take only bounded values: catalog slugs, format and provider names, taxonomy codes — never what a
client wrote (a model the catalog does not know is counted under model="").
"""

import asyncio
import atexit
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, values

from core.processes import current_pid
from gateway.metering.base import Outcome
from gateway.models import GenerationStatus

if TYPE_CHECKING:
    from gateway.metering.journal import Journal

# prometheus_client chooses its value store when it is first imported, from the environment; the settings
# export the directory, but whoever imported prometheus_client first may have come before them. Its files
# are named by the process id, which it checks on every value it records: the kept one saves a system call.
values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)

REFUSED = "refused"  # a request's status when it was answered with an error before any upstream call
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Overhead is whole milliseconds (Outcome's fields), so the first bucket holds the requests under one.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

REQUESTS = Counter(
    "hyperinfer_requests",
    "Gateway requests by ingress format, model, provider and how they ended: completed, failed, cancelled, "
    "or refused (answered with an error before any upstream call).",
    ["format", "model", "provider", "status"],
    registry=None,
)
ERRORS = Counter(
    "hyperinfer_errors",
    "Requests that ended in an error, by ingress format, model, provider and taxonomy code.",
    ["format", "model", "provider", "code"],
    registry=None,
)
UPSTREAM_SECONDS = Histogram(
    "hyperinfer_upstream_seconds",
    "Time a request spent waiting on upstreams, from the first request sent to the last byte read.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
TTFT_SECONDS = Histogram(
    "hyperinfer_time_to_first_token_seconds",
    "From a request's arrival to its first event from the upstream.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
OVERHEAD_SECONDS = Histogram(
    "hyperinfer_gateway_overhead_seconds",
    "A request's total time minus the time it spent waiting on upstreams.",
    ["format"],
    buckets=OVERHEAD_BUCKETS,
    registry=None,
)
TOKENS_BILLED = Counter(
    "hyperinfer_tokens_billed",
    "Tokens billed, by model and kind (prompt, completion).",
    ["model", "kind"],
    registry=None,
)
MICRO_USD_BILLED = Counter(
    "hyperinfer_billed_micro_usd", "Micro-USD billed, by model.", ["model"], registry=None
)
SETTLEMENTS_DEFERRED = Counter(
    "hyperinfer_settlements_deferred",
    "Settlements no meter took at the request's end (Redis or PostgreSQL down); the journal's keeper bills "
    "them later, uncounted in the billed totals.",
    ["format"],
    registry=None,
)
ROUTE_COOLDOWNS = Counter(
    "hyperinfer_route_cooldowns",
    "Times a route began to be tried after its model's other routes, having failed in a row in this "
    "process (gateway/route_health.py).",
    ["provider", "upstream_model"],
    registry=None,
)
ROUTES_COOLING = Gauge(
    "hyperinfer_route_cooling",
    "1 while a route is tried after its model's other routes by a live gateway process: cooling there, "
    "begun by it or learned from another through Redis (sampled every second).",
    ["provider", "upstream_model"],
    multiprocess_mode="livemax",
    registry=None,
)
PROVIDER_FULL = Counter(
    "hyperinfer_provider_full",
    "Requests a provider's max_concurrency turned away from its route (gateway/provider_slots.py): its "
    "queue was full, or they waited its queue_timeout_seconds out.",
    ["provider", "why"],
    registry=None,
)
PROVIDER_REQUESTS = Gauge(
    "hyperinfer_provider_requests",
    "Requests under way to each provider that sets max_concurrency, and waiting for one of its slots "
    "(sampled every second).",
    ["provider", "state"],
    multiprocess_mode="livesum",
    registry=None,
)
JOURNAL_ENTRIES = Gauge(
    "hyperinfer_journal_entries",
    "Requests in the settlement journals (ADR 0010): open (under way), unsettled (over, no meter took the "
    "bill yet), unconfirmed (the Redis meter took it, not yet seen in PostgreSQL) and spilled (waiting on "
    "disk, out of memory, for PostgreSQL to confirm them).",
    ["state"],
    multiprocess_mode="livesum",  # summed over the live processes; a dead one's figures go with it
    registry=None,
)


# --- Recording: called on every request, memory only ---------------------------------------------------
# prometheus_client's multiprocess values take a lock and write an mmap on every inc() and observe(): ~18 µs
# a request for its dozen figures. A request adds to this process's tally instead (plain dicts under one
# lock, ~2 µs), and a daemon thread publishes the tally into the files every PUBLISH_SECONDS, as one inc()
# a series; so does a scrape, for its own process, and the process's exit. A scrape shows another
# process's requests at most PUBLISH_SECONDS late; a killed process loses at most that much.
PUBLISH_SECONDS = 1.0


class _Tally:
    """What this process recorded since it last published: a counter's increments and a histogram's sum
    and per-bucket counts (prometheus_client's own layout: each bucket counts what fell in it alone)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[Counter, float] = {}
        self.histograms: dict[Histogram, list[float]] = {}  # [sum, bucket 0, bucket 1, …]
        self.publisher: threading.Thread | None = None
        self.samplers: list[Callable[[], None]] = []  # run at each publish: figures read, not tallied

    def add(self, counter: Counter, amount: float = 1) -> None:
        with self.lock:
            self.counts[counter] = self.counts.get(counter, 0) + amount
        if self.publisher is None:
            self._start_publisher()

    def observe(self, histogram: Histogram, amount: float) -> None:
        with self.lock:
            figures = self.histograms.get(histogram)
            if figures is None:
                figures = self.histograms[histogram] = [0.0] * (len(histogram._upper_bounds) + 1)
            figures[0] += amount
            figures[1 + bisect_left(histogram._upper_bounds, amount)] += 1  # the first bound ≥ amount
        if self.publisher is None:
            self._start_publisher()

    def publish(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
            histograms, self.histograms = self.histograms, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, (total, *buckets) in histograms.items():
            histogram._sum.inc(total)
            for bucket, count in zip(histogram._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)
        for sample in self.samplers:
            sample()

    def _start_publisher(self) -> None:
        with self.lock:
            if self.publisher is not None:
                return
            self.publisher = threading.Thread(target=self._publish_forever, name="metrics", daemon=True)
        self.publisher.start()

    def _publish_forever(self) -> None:
        while True:
            time.sleep(PUBLISH_SECONDS)
            self.publish()

    def forked(self) -> None:
        """A forked child (a Celery worker) has its parent's tally but not its thread: start afresh."""
        self.lock = threading.Lock()
        self.counts, self.histograms, self.publisher = {}, {}, None


_tally = _Tally()
publish = _tally.publish
# A server's processes publish from their start, not from their first request: a sampled figure (a route
# cooling, learned from another process) must not stay as a scrape left it in a process that serves none.
publish_from_now_on = _tally._start_publisher
sample_each_publish = _tally.samplers.append
atexit.register(publish)
os.register_at_fork(after_in_child=_tally.forked)


# Each label combination's child, looked up once: `labels()` validates and locks on every call.
@cache
def _requests(fmt: str, model: str, provider: str, status: str) -> Counter:
    return REQUESTS.labels(fmt, model, provider, status)


@cache
def _errors(fmt: str, model: str, provider: str, code: str) -> Counter:
    return ERRORS.labels(fmt, model, provider, code)


@cache
def _timings(fmt: str, provider: str) -> tuple[Histogram, Histogram, Histogram]:
    return TTFT_SECONDS.labels(provider), UPSTREAM_SECONDS.labels(provider), OVERHEAD_SECONDS.labels(fmt)


@cache
def _billed(model: str) -> tuple[Counter, Counter, Counter]:
    prompt, completion = TOKENS_BILLED.labels(model, "prompt"), TOKENS_BILLED.labels(model, "completion")
    return prompt, completion, MICRO_USD_BILLED.labels(model)


@cache
def _deferred(fmt: str) -> Counter:
    return SETTLEMENTS_DEFERRED.labels(fmt)


def observe(
    fmt: str, model: str, outcome: Outcome, cost: int | None, journal: "Journal | None" = None
) -> None:
    """An admitted request, once it is over. `cost` is what the meter billed (micro-USD); None when no meter
    took the settlement (the journal's keeper bills it later). `journal` is the event loop's, to count."""
    provider = outcome.provider
    _tally.add(_requests(fmt, model, provider, outcome.status))
    if outcome.error_code:
        _tally.add(_errors(fmt, model, provider, outcome.error_code))
    ttft, upstream, overhead = _timings(fmt, provider)
    if outcome.ttft_ms is not None:
        _tally.observe(ttft, outcome.ttft_ms / 1000)
    if outcome.upstream_ms is not None:
        _tally.observe(upstream, outcome.upstream_ms / 1000)
        _tally.observe(overhead, max(0, outcome.latency_ms - outcome.upstream_ms) / 1000)
    if cost is None:
        _tally.add(_deferred(fmt))
    else:
        billed(model, outcome, cost)
    if journal is not None:
        _watch(journal)


def billed(model: str, outcome: Outcome, cost: int) -> None:
    """What a meter billed for one request: when the request ended, or later, when the journal's keeper
    settled what no meter took then (observe counted it as deferred)."""
    if outcome.status != GenerationStatus.FAILED:  # a failure is billed nothing (base.charge_for)
        prompt, completion, micro_usd = _billed(model)
        _tally.add(prompt, outcome.usage.prompt_tokens)
        _tally.add(completion, outcome.usage.completion_tokens)
        _tally.add(micro_usd, cost)


def refused(fmt: str, model: str, code: str) -> None:
    """A request answered with an error before any upstream call; `model` is the catalog's slug, or ""
    before the model was resolved."""
    _tally.add(_requests(fmt, model, "", REFUSED))
    _tally.add(_errors(fmt, model, "", code))


def route_cooling(provider: str, upstream_model: str) -> None:
    _tally.add(ROUTE_COOLDOWNS.labels(provider, upstream_model))


def route_cooling_now(provider: str, upstream_model: str, cooling: bool) -> None:
    """Called by the publisher (gateway/route_health.py's sampler), not by requests."""
    ROUTES_COOLING.labels(provider, upstream_model).set(1 if cooling else 0)


def provider_full(provider: str, why: str) -> None:
    _tally.add(PROVIDER_FULL.labels(provider, why))


def provider_requests(provider: str, *, under_way: int, waiting: int) -> None:
    """Called by the publisher (gateway/provider_slots.py's sampler), not by requests."""
    PROVIDER_REQUESTS.labels(provider, "under_way").set(under_way)
    PROVIDER_REQUESTS.labels(provider, "waiting").set(waiting)


# The endpoints beyond the formats, by the module of the work they run (gateway/endpoint.py `answered`
# knows no more of them), named as their records name them where they have any.
ENDPOINT_NAMES = {"gateway.embeddings": "embeddings", "gateway.counting": "count_tokens"}


def endpoint_refused(work: Callable[[], object], code: str) -> None:
    module = work.__module__
    refused(ENDPOINT_NAMES.get(module, module.rpartition(".")[2]), "", code)


# --- The settlement journal, counted every few seconds per event loop, off the requests' path ------------
JOURNAL_COUNT_SECONDS = 5.0
JOURNAL_STATES = ("open", "unsettled", "unconfirmed", "spilled")
_journals: dict[asyncio.AbstractEventLoop, "Journal"] = {}
_journal_counts: dict[asyncio.AbstractEventLoop, dict[str, int]] = {}
_counting_tasks: set["asyncio.Task[None]"] = set()


def _watch(journal: "Journal") -> None:
    """Count this event loop's journal from now on (a task started by the loop's first request)."""
    if journal in _journals.values():  # (a Journal equals only itself)
        return  # a journal is one loop's; asking for the loop costs a getpid() call (resp.py)
    loop = asyncio.get_running_loop()
    starting = loop not in _journals
    _journals[loop] = journal  # a keeper that restarted has a new journal
    if starting:
        task = loop.create_task(_count_journal(loop))
        _counting_tasks.add(task)
        task.add_done_callback(lambda done: _stop_counting(loop, done))


async def _count_journal(loop: asyncio.AbstractEventLoop) -> None:
    while True:
        _journal_counts[loop] = journal_counts(_journals[loop])
        _publish_journal_counts()
        await asyncio.sleep(JOURNAL_COUNT_SECONDS)


def _stop_counting(loop: asyncio.AbstractEventLoop, task: "asyncio.Task[None]") -> None:
    _counting_tasks.discard(task)
    _journals.pop(loop, None)
    _journal_counts.pop(loop, None)
    _publish_journal_counts()


def journal_counts(journal: "Journal") -> dict[str, int]:
    counts = dict.fromkeys(JOURNAL_STATES, 0)
    for entry in list(journal.pending.values()):
        if entry.outcome is None:
            counts["open"] += 1
        elif entry.taken_at is None:
            counts["unsettled"] += 1
        else:
            counts["unconfirmed"] += 1
    counts["spilled"] = journal.spilled_entries
    return counts


def _publish_journal_counts() -> None:
    """This process's figure: the sum over its event loops (one in production, several in tests)."""
    for state in JOURNAL_STATES:
        JOURNAL_ENTRIES.labels(state).set(sum(counts[state] for counts in list(_journal_counts.values())))

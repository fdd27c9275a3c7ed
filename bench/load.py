"""The load generator: N concurrent keep-alive clients on one aiohttp session, for a fixed time.

Each of the N workers sends a request, reads the whole answer, checks it, and sends the next one, until the
measuring window closes; no new request starts after that, and each has a timeout, so a run is bounded in
time. Requests that finish during the warm-up are not measured (their errors are still counted).
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import aiohttp

# The `--modes` a run can ask for: whether its requests are streamed.
MODES = {"nonstream": False, "stream": True}

REQUEST_TIMEOUT_SECONDS = 60.0
ERROR_SAMPLE_BYTES = 400


@dataclass(frozen=True)
class Protocol:
    """How an answer in one API format shows it is whole."""

    whole: bytes  # in a non-streamed answer
    stream_end: bytes  # the last frame of a stream
    stream_error: bytes  # the start of an in-stream error frame


PROTOCOLS = {
    "chat": Protocol(b'"choices"', b"data: [DONE]", b'data: {"error"'),
    "responses": Protocol(b'"output"', b"event: response.completed", b"event: error"),
    "messages": Protocol(b'"content"', b"event: message_stop", b"event: error"),
}


@dataclass(frozen=True)
class Target:
    name: str  # "direct", "bare", "gateway" or "litellm"
    url: str
    headers: dict[str, str]
    bodies: dict[bool, bytes]  # stream? → request body
    format: str = "chat"  # a key of PROTOCOLS


@dataclass
class CellResult:
    """One target, one mode, one concurrency."""

    target: str
    stream: bool
    concurrency: int
    duration: float
    ok: int = 0  # successes that finished inside the measuring window
    sent: int = 0  # every request sent, warm-up included
    answered: int = 0  # every 2xx answer, warm-up included (what the gateway should have billed)
    latencies: list[float] = field(default_factory=list)  # seconds, measured successes
    ttfbs: list[float] = field(default_factory=list)  # seconds to the first body byte (streaming)
    errors: Counter[str] = field(default_factory=Counter)  # kind → count, warm-up included
    error_samples: dict[str, str] = field(default_factory=dict)  # kind → first body seen
    cpu_seconds: float | None = None  # the target's processes, whole cell including warm-up
    writer_cpu_seconds: float | None = None  # of which the gateway's meter writer (ADR 0022), if it has one
    host_busy: float | None = None  # share of all the machine's cores busy during the cell (0..1)
    calls: int | None = None  # Python calls the server's event loops made over the cell (--count-calls)

    @property
    def rps(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def record(
        self,
        started: float,
        finished: float,
        ttfb: float | None,
        error: str | None,
        sample: str,
        *,
        measured: bool,
    ) -> bool:
        """Count one request's outcome; True when it was answered whole."""
        if error is not None:
            self.errors[error] += 1
            self.error_samples.setdefault(error, sample)
            return False
        self.answered += 1
        if measured:
            self.ok += 1
            self.latencies.append(finished - started)
            if ttfb is not None:
                self.ttfbs.append(ttfb)
        return True


def check_answer(data: bytes, stream: bool, last_piece: bytes, fmt: str = "chat") -> str | None:
    """None when the answer is whole; otherwise what is wrong with it."""
    protocol = PROTOCOLS[fmt]
    if stream:
        if protocol.stream_error in data:
            return "error event in stream"
        last_frame = data.rstrip().rsplit(b"\n\n", 1)[-1]
        if not last_frame.startswith(protocol.stream_end):
            return f"stream did not end with {protocol.stream_end.decode()}"
    elif protocol.whole not in data:
        return f"no {protocol.whole.decode()} in the answer"
    if last_piece not in data:
        return "answer is missing tokens"
    return None


async def _one(
    session: aiohttp.ClientSession, target: Target, stream: bool, last_piece: bytes
) -> tuple[float, float | None, str | None, str]:
    """(finish time, time to first byte, error kind or None, error sample)."""
    started = time.perf_counter()
    first: float | None = None
    try:
        async with session.post(target.url, data=target.bodies[stream], headers=target.headers) as response:
            if stream:
                parts = []
                async for chunk in response.content.iter_any():
                    if first is None:
                        first = time.perf_counter() - started
                    parts.append(chunk)
                data = b"".join(parts)
            else:
                data = await response.read()
            status = response.status
    except TimeoutError:
        return time.perf_counter(), first, "timeout", f"no complete answer in {REQUEST_TIMEOUT_SECONDS:.0f}s"
    except aiohttp.ClientError as exc:
        return (
            time.perf_counter(),
            first,
            f"client error: {type(exc).__name__}",
            str(exc)[:ERROR_SAMPLE_BYTES],
        )
    finished = time.perf_counter()
    if not 200 <= status < 300:
        return finished, first, f"HTTP {status}", data[:ERROR_SAMPLE_BYTES].decode(errors="replace")
    problem = check_answer(data, stream, last_piece, target.format)
    if problem:
        sample = data[-ERROR_SAMPLE_BYTES:].decode(errors="replace")
        return finished, first, f"HTTP {status}, {problem}", sample
    return finished, first, None, ""


async def run_cell(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    warmup: float,
    duration: float,
    last_piece: bytes,
    cpu_probe: Callable[[], float | None] | None = None,
    writer_probe: Callable[[], float | None] | None = None,
    host_probe: Callable[[], tuple[float, float] | None] | None = None,
) -> CellResult:
    result = CellResult(target.name, stream, concurrency, duration)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    cpu_before = cpu_probe() if cpu_probe else None
    writer_before = writer_probe() if writer_probe else None
    host_before = host_probe() if host_probe else None
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        start = time.perf_counter()
        window_start = start + warmup
        window_end = window_start + duration

        async def worker() -> None:
            while time.perf_counter() < window_end:
                request_started = time.perf_counter()
                result.sent += 1
                finished, ttfb, error, sample = await _one(session, target, stream, last_piece)
                measured = window_start <= finished <= window_end
                if not result.record(request_started, finished, ttfb, error, sample, measured=measured):
                    await asyncio.sleep(0.001)  # a failing server must not turn this into a busy loop

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        hard_limit = warmup + duration + REQUEST_TIMEOUT_SECONDS + 10
        try:
            done, _ = await asyncio.wait(workers, timeout=hard_limit)
            for task in done:
                task.result()  # a bug in a worker surfaces here
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    if host_probe is not None and host_before is not None:
        host_after = host_probe()
        if host_after is not None and host_after[1] > host_before[1]:
            result.host_busy = (host_after[0] - host_before[0]) / (host_after[1] - host_before[1])
    if cpu_probe is not None and cpu_before is not None:
        cpu_after = cpu_probe()
        if cpu_after is not None:
            result.cpu_seconds = cpu_after - cpu_before
    if writer_probe is not None and writer_before is not None:
        writer_after = writer_probe()
        if writer_after is not None:
            result.writer_cpu_seconds = writer_after - writer_before
    return result


async def run_count(
    target: Target,
    *,
    streams: list[bool],
    concurrency: int,
    total: int,
    last_piece: bytes,
    checkpoints: Collection[int] = (),
    on_checkpoint: Callable[[int], None] | None = None,
) -> list[CellResult]:
    """Exactly `total` requests, with no time limit (the soak): request i is sent in mode
    streams[i % len(streams)]. One result per mode, every answer measured, its duration the whole run's.
    When the count of finished requests reaches a checkpoint, on_checkpoint(count) runs in the load's own
    loop (so it must be short: it holds up every client while it runs)."""
    results = {stream: CellResult(target.name, stream, concurrency, 0.0) for stream in streams}
    marks = set(checkpoints)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    issued = finished_count = 0
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal issued, finished_count
            while issued < total:
                stream = streams[issued % len(streams)]
                issued += 1  # taken before the await: no two clients send the same request number
                result = results[stream]
                result.sent += 1
                request_started = time.perf_counter()
                finished, ttfb, error, sample = await _one(session, target, stream, last_piece)
                whole = result.record(request_started, finished, ttfb, error, sample, measured=True)
                finished_count += 1
                if on_checkpoint is not None and finished_count in marks:
                    on_checkpoint(finished_count)
                if not whole:
                    await asyncio.sleep(0.001)  # a failing server must not turn this into a busy loop

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        try:
            await asyncio.gather(*workers)  # each request has a timeout, so this ends
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        elapsed = time.perf_counter() - start
    for result in results.values():
        result.duration = elapsed
    return list(results.values())


async def preflight(target: Target, stream: bool, last_piece: bytes) -> str | None:
    """One request; None when it is answered whole, else a description of what came back."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        _, _, error, sample = await _one(session, target, stream, last_piece)
    return None if error is None else f"{error}: {sample}"

"""The meter writer gives the C allocator's free pages back once a backlog is written or a batch failed (a
PostgreSQL outage: every try reads a batch and drops it), and not after each batch of a steady flow."""

import asyncio

from gateway.metering import writer


def test_free_memory_is_given_back_after_a_backlog_or_a_failure_not_after_each_batch(monkeypatch):
    full = writer.BATCH_SIZE
    outcomes = iter([5, 7, full, full, 3, RuntimeError("PostgreSQL is down"), 4, 0])
    stop = asyncio.Event()
    flushes_before_each_trim: list[int] = []
    flushed = 0

    async def flush_once(**_: object) -> int:
        nonlocal flushed
        flushed += 1
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == 0:
            stop.set()
        return outcome

    async def maintain() -> tuple[int, int]:
        return 0, 0

    async def drain() -> int:
        return 0

    monkeypatch.setattr(writer, "flush_once", flush_once)
    monkeypatch.setattr(writer, "maintain", maintain)
    monkeypatch.setattr(writer, "drain", drain)
    monkeypatch.setattr(writer, "IDLE_SECONDS", 0.001)
    monkeypatch.setattr(writer, "release_free_memory", lambda: flushes_before_each_trim.append(flushed))

    asyncio.run(asyncio.wait_for(writer.run_flusher(stop), 30))

    # after the backlog (two full batches, then a short one) and after the failed one; never in between
    assert flushes_before_each_trim == [5, 6]

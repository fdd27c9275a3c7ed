"""How a stream's events reach the response loop (gateway/answer_flow.py): in batches of what arrived
together, the last one marked so the answer's end goes with it in one write, long bursts split, a failure
after the events that came before it."""

import asyncio
from collections.abc import AsyncGenerator

import pytest

from core.errors import ErrorCode
from gateway.answer_flow import _BURST, batches
from gateway.canonical import Event, Finish, TextDelta, Usage
from gateway.http import ClientGone
from gateway.routing import OpenStream
from gateway.upstreams.base import UpstreamError


def deltas(count: int) -> list[Event]:
    return [TextDelta(0, f"t{n}") for n in range(count)]


def opened(rest: AsyncGenerator[Event, None]) -> OpenStream:
    return OpenStream(route=None, first=Finish("stop"), rest=rest)  # type: ignore[arg-type]


async def collect(stream: OpenStream) -> list[tuple[list[Event], bool]]:
    disconnect: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def idle() -> None:
        raise AssertionError("no idle wait expected")

    return [(list(batch), last) async for batch, last in batches(stream, disconnect, idle)]


def test_events_that_arrived_together_come_in_one_batch_marked_last():
    events = deltas(5)

    async def rest() -> AsyncGenerator[Event, None]:
        for event in events:
            yield event

    stream = opened(rest())
    assert asyncio.run(collect(stream)) == [([stream.first], False), (events, True)]


def test_a_long_burst_is_split_and_only_its_end_is_last():
    events = deltas(_BURST + 3)

    async def rest() -> AsyncGenerator[Event, None]:
        for event in events:
            yield event

    got = asyncio.run(collect(opened(rest())))
    assert got[1:] == [(events[:_BURST], False), (events[_BURST:], True)]


def test_events_apart_in_time_come_in_batches_of_their_own():
    events = deltas(2)

    async def rest() -> AsyncGenerator[Event, None]:
        yield events[0]
        await asyncio.sleep(0.01)  # the next token, later
        yield events[1]

    got = asyncio.run(collect(opened(rest())))
    assert got[1:] == [([events[0]], False), ([events[1]], True)]


def test_a_failure_after_events_comes_after_them_and_no_batch_is_last():
    events = deltas(3)
    failure = UpstreamError(ErrorCode.PROVIDER_UNAVAILABLE, "cut")

    async def rest() -> AsyncGenerator[Event, None]:
        for event in events:
            yield event
        raise failure

    seen: list[tuple[list[Event], bool]] = []

    async def read() -> None:
        disconnect: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async for batch, last in batches(opened(rest()), disconnect, asyncio.sleep):
            seen.append((list(batch), last))

    with pytest.raises(UpstreamError) as raised:
        asyncio.run(read())
    assert raised.value is failure
    assert seen[1:] == [(events, False)]


def test_a_quiet_upstream_gets_a_keep_alive_each_interval_and_none_while_events_come(settings):
    settings.GATEWAY_KEEPALIVE_SECONDS = 0.05
    events = deltas(4)

    async def rest() -> AsyncGenerator[Event, None]:
        yield events[0]
        await asyncio.sleep(0.175)  # three intervals and a half of silence
        for event in events[1:]:
            await asyncio.sleep(0.02)  # then tokens well inside the interval
            yield event

    log: list[object] = []

    async def read() -> None:
        disconnect: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def idle() -> None:
            log.append("keep-alive")

        async for batch, _ in batches(opened(rest()), disconnect, idle):
            log.extend(batch)

    asyncio.run(read())
    first, middle, rest_of_them = log[1], log[2:-3], log[-3:]
    assert first == events[0] and rest_of_them == events[1:]
    assert middle == ["keep-alive"] * len(middle) and 2 <= len(middle) <= 3  # ~one an interval, not more


def test_what_was_read_and_never_sent_is_handed_back_once_the_upstream_is_closed():
    """The client stops taking the answer (its send fails) while the reader has read ahead: the events read
    and never sent come back in `unsent` (they were generated, so they are paid for), after the upstream's
    generator was closed, and no marker or failure with them."""
    events = [*deltas(_BURST + 5), Usage(3, 20)]
    closed = []

    async def rest() -> AsyncGenerator[Event, None]:
        try:
            for event in events:
                yield event
            await asyncio.sleep(10)  # the upstream still open, not yet at its end
        finally:
            closed.append(True)

    async def read() -> tuple[list[Event], list[Event]]:
        disconnect: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent: list[Event] = []
        unsent: list[Event] = []
        flow = batches(opened(rest()), disconnect, asyncio.sleep, unsent)
        async for batch, _ in flow:
            sent.extend(batch)
            if len(sent) > 1:  # the first batch of deltas went; the next send fails
                break
        assert not closed  # not until the flow is closed
        await flow.aclose()
        return sent, unsent

    sent, unsent = asyncio.run(read())
    assert closed == [True]
    assert sent[1:] == events[:_BURST] and unsent == events[_BURST:]


def test_what_was_read_when_the_client_left_is_handed_back_whole():
    """The client leaves while a burst waits in the inbox: none of it is yielded, and all of it — the part
    already taken for the next batch included — comes back in `unsent`."""
    events = [*deltas(_BURST + 3), Usage(3, 20)]

    async def rest() -> AsyncGenerator[Event, None]:
        for event in events:
            yield event
        await asyncio.sleep(10)

    async def read() -> tuple[list[Event], list[Event]]:
        disconnect: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent: list[Event] = []
        unsent: list[Event] = []
        flow = batches(opened(rest()), disconnect, asyncio.sleep, unsent)
        with pytest.raises(ClientGone):
            async for batch, _ in flow:
                sent.extend(batch)
                await asyncio.sleep(0.01)  # the reader has read all of it meanwhile
                disconnect.set_result(None)  # and the client leaves
        return sent, unsent

    sent, unsent = asyncio.run(read())
    assert sent[1:] == [] and unsent == events

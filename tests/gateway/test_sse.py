"""gateway.upstreams.sse.iter_sse: server-sent events read as the bytes arrive, cut anywhere."""

import asyncio

import pytest

from gateway.upstreams.http1 import HttpError
from gateway.upstreams.sse import MAX_LINE_BYTES, SseEvent, iter_sse


class _Pieces:
    """An upstream body that arrives in the given pieces (iter_sse reads only `chunks()`)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def chunks(self):
        for piece in self.pieces:
            yield piece


def events_of(pieces: list[bytes]) -> list[SseEvent]:
    async def read():
        return [event async for event in iter_sse(_Pieces(pieces))]  # type: ignore[arg-type]

    return asyncio.run(read())


STREAM = (
    b": a comment\n"
    b'data: {"a": 1}\n\n'
    b"event: error\r\n"
    b"data: first line\r\n"
    b"data:second line, no space\r\n\r\n"
    b"data\n\n"  # a field name alone: data with an empty value
    b"id: 7\nretry: 10\ndata: caf\xc3\xa9\n\n"  # fields other than event and data are ignored
    b"database: not a data field\n\n"  # nothing but an unknown field: no event
    b"data: [DONE]\n"  # the last event without its blank line: read at the end
    b"data: cut off"  # a last line without its end: not read
)
EXPECTED = [
    SseEvent(None, '{"a": 1}'),
    SseEvent("error", "first line\nsecond line, no space"),
    SseEvent(None, ""),
    SseEvent(None, "café"),
    SseEvent(None, "[DONE]"),
]


def test_events_names_comments_and_line_ends():
    assert events_of([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_the_same_events_whatever_the_pieces(size):
    """Cut at every size: inside a line, between \\r and \\n, inside the two bytes of an é."""
    assert events_of([STREAM[i : i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_bytes_that_are_not_utf8_are_replaced_not_fatal():
    assert events_of([b"data: a\xffb\n\n"]) == [SseEvent(None, "a\ufffdb")]


def test_an_event_name_alone_is_no_event_and_does_not_leak_into_the_next():
    assert events_of([b"event: ping\n\ndata: x\n\n"]) == [SseEvent(None, "x")]


def test_a_line_in_thousands_of_pieces_is_read_whole():
    """A line just under the limit in 4 KiB reads: its pieces are joined once at its end (the buffer was
    copied at every read before: ~4,000 copies of 8 MiB on average for this one)."""
    data = b"x" * (MAX_LINE_BYTES - 64)
    body = b"data: " + data + b"\n\ndata: next\n\n"
    pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    events = events_of(pieces)
    assert [len(event.data) for event in events] == [len(data), 4]
    assert events[0].data == data.decode() and events[1].data == "next"


@pytest.mark.parametrize("piece", [1024 * 1024, MAX_LINE_BYTES + 1])
def test_a_line_past_the_limit_fails_the_stream(piece):
    """An upstream that never ends its line is not buffered without bound: the stream fails as a broken one
    does (the adapters answer provider_unavailable), whether the line comes in pieces or in one read."""
    pieces = [b"data: {}\n\n", *[b"y" * piece] * (MAX_LINE_BYTES // piece + 1)]
    with pytest.raises(HttpError, match=f"longer than {MAX_LINE_BYTES} bytes"):
        events_of(pieces)

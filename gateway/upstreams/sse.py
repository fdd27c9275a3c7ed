"""Server-sent events from an upstream response, parsed incrementally as the bytes arrive."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.upstreams.http1 import HttpError, UpstreamResponse

# The longest line an upstream's stream may send: a delta is a few hundred bytes, a tool call's arguments
# rarely more than kilobytes. Past this it is no answer a client could use, and holding it would grow
# without bound; the answer fails as a broken stream does (provider_unavailable).
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class SseEvent:
    event: str | None
    data: str


async def iter_sse(response: UpstreamResponse) -> AsyncIterator[SseEvent]:
    """Yield each event (`event:` name and joined `data:` lines); comments and empty events are skipped. A
    last line without its end is not read."""
    event_name: str | None = None
    data_lines: list[str] = []
    # A line's pieces until its end comes, joined once then: a long line in many reads is copied once, not
    # once a read (`buffer += chunk` was quadratic in the line's length).
    partial: list[bytes] = []
    partial_bytes = 0
    async for chunk in response.chunks():
        lines = chunk.split(b"\n")
        if partial:
            partial.append(lines[0])
            partial_bytes += len(lines[0])
            if partial_bytes > MAX_LINE_BYTES:
                raise _line_too_long()
            if len(lines) == 1:
                continue
            lines[0] = b"".join(partial)
            partial, partial_bytes = [], 0
        tail = lines.pop()
        if tail:
            partial, partial_bytes = [tail], len(tail)
            if partial_bytes > MAX_LINE_BYTES:
                raise _line_too_long()
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data_lines:
                    yield SseEvent(event_name, "\n".join(data_lines))
                event_name, data_lines = None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data_lines.append(value)
            elif name == "event":
                event_name = value
    if data_lines:
        yield SseEvent(event_name, "\n".join(data_lines))


def _line_too_long() -> HttpError:
    return HttpError(f"a line of the answer's event stream is longer than {MAX_LINE_BYTES} bytes")

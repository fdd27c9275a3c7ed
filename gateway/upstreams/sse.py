"""Server-sent events from an upstream response, parsed incrementally as the bytes arrive."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.upstreams.http1 import UpstreamResponse


@dataclass(slots=True)
class SseEvent:
    event: str | None
    data: str


async def iter_sse(response: UpstreamResponse) -> AsyncIterator[SseEvent]:
    """Yield each event (`event:` name and joined `data:` lines); comments and empty events are skipped."""
    event_name: str | None = None
    data_lines: list[str] = []
    buffer = b""
    async for chunk in response.chunks():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
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

"""The bench's mock upstream (bench/mock_upstream.py) paces a stream's frames with `--interval-ms`, as a
model's tokens come apart in time, and sends the same bytes either way."""

import asyncio
import json
import re
import time

from aiohttp.test_utils import TestClient, TestServer

from bench.mock_upstream import make_app

BODY = {"model": "bench-echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def streamed(interval_ms: float) -> tuple[bytes, list[float]]:
    """The stream's bytes, and when (seconds from the request) each read of them came."""
    async with TestClient(TestServer(make_app(tokens=3, interval_ms=interval_ms))) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", data=json.dumps(BODY))
        parts, arrivals = [], []
        async for chunk in response.content.iter_any():
            parts.append(chunk)
            arrivals.append(time.monotonic() - started)
        return b"".join(parts), arrivals


def test_paced_frames_come_apart_and_are_the_same_bytes():
    paced, arrivals = asyncio.run(streamed(interval_ms=40))
    at_once, _ = asyncio.run(streamed(interval_ms=0))
    frames = paced.count(b"data: ")
    assert frames == 6  # a role frame, 3 deltas, the finish frame, [DONE]
    created = re.compile(rb'"created":\d+')  # the second each answer was first built in
    assert created.sub(b"", paced) == created.sub(b"", at_once)
    assert arrivals[-1] >= 0.04 * (frames - 1)  # every frame after the first waited its interval
    assert len(arrivals) >= frames - 1  # they came in separate reads, not as one answer at once

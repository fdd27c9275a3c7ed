"""Run an aiohttp application as a real HTTP server on loopback, in a thread with its own event loop.

Fakes of upstream providers are built on this, so the gateway (in any process or thread) talks to them
over real TCP exactly as it would to the provider.
"""

import asyncio
import threading

from aiohttp import web

from gateway.canonical import CanonicalRequest, Event
from gateway.upstreams.base import RouteInfo, UpstreamAdapter
from gateway.upstreams.http1 import UpstreamClient

# How long a fake waits between the last bytes it sends and a deliberate connection drop ("cut"): the reader
# must have consumed them first (a client may raise its error ahead of bytes still in its buffer).
CUT_AFTER_S = 0.2


class FakeServer:
    def __init__(self, app: web.Application):
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _collect(
    events: list[Event], adapter: UpstreamAdapter, request: CanonicalRequest, route: RouteInfo
) -> None:
    client = UpstreamClient()
    try:
        async for event in adapter.stream(request, route, client):
            events.append(event)
    finally:
        await client.close()


def collect_events(adapter: UpstreamAdapter, request: CanonicalRequest, route: RouteInfo) -> list[Event]:
    """Run one adapter attempt to the end and return its events (UpstreamError propagates)."""
    events: list[Event] = []
    asyncio.run(_collect(events, adapter, request, route))
    return events


def collect_events_into(
    events: list[Event], adapter: UpstreamAdapter, request: CanonicalRequest, route: RouteInfo
) -> None:
    """As collect_events, into `events`: what came before a failure stays there when UpstreamError rises."""
    asyncio.run(_collect(events, adapter, request, route))

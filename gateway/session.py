"""One pooled aiohttp session per event loop (per process in production) for all upstream traffic, and one
guarded session per loop for the URLs a model chooses (web_fetch, the pdf tool's file URLs)."""

import asyncio

import aiohttp

from gateway.tools.fetch import fetch_session
from gateway.tools.registry import fetch_resolver

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_fetch_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def upstream_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
        # Per-request timeouts come from each provider's timeout_seconds (set by the adapters).
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        _sessions[loop] = session
    return session


def guarded_fetch_session() -> aiohttp.ClientSession:
    """For URLs a model or client chose: public addresses only, unless WEB_FETCH_ALLOWED_NETWORKS says."""
    loop = asyncio.get_running_loop()
    session = _fetch_sessions.get(loop)
    if session is None or session.closed:
        session = _fetch_sessions[loop] = fetch_session(fetch_resolver())
    return session


async def close_upstream_session() -> None:
    loop = asyncio.get_running_loop()
    for sessions in (_sessions, _fetch_sessions):
        session = sessions.pop(loop, None)
        if session is not None:
            await session.close()

"""Per event loop (per process in production): the model upstreams' pooled client, the server tools' web
session, and the guarded web session for the URLs a model chooses (web_fetch, the pdf tool's file URLs)."""

import asyncio

import aiohttp

from gateway.tools.fetch import fetch_session
from gateway.tools.registry import fetch_resolver
from gateway.upstreams.http1 import UpstreamClient

_clients: dict[asyncio.AbstractEventLoop, UpstreamClient] = {}
_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_fetch_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def upstream_client() -> UpstreamClient:
    """For the model providers (every answer's POST): gateway/upstreams/http1.py."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.closed:
        client = _clients[loop] = UpstreamClient()
    return client


def web_session() -> aiohttp.ClientSession:
    """For the server tools' APIs (web search, image generation)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
        # Per-request timeouts come from each tool's own settings.
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


async def close_upstream_sessions() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.close()
    for sessions in (_sessions, _fetch_sessions):
        session = sessions.pop(loop, None)
        if session is not None:
            await session.close()

"""web_fetch's fetcher: a URL a model asked for, as readable text, without letting it reach this network.

The model chooses the URL, so the URL is hostile until proven otherwise (server-side request forgery):
- only http and https, no credentials in the URL;
- every name is resolved by `PublicOnlyResolver`, which refuses the whole name when any of its addresses is
  not a public unicast one (loopback, private, link-local and so cloud metadata, CGNAT, multicast, reserved,
  unspecified, IPv4-mapped or -translated IPv6 of those). aiohttp connects to exactly the addresses it
  returned, so a name that answers differently the second time (DNS rebinding) gains nothing;
- redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked as the first;
- the body is read up to `max_bytes` and the whole fetch bounded by `timeout_seconds`; no proxy from the
  environment, no cookies kept.
HTML becomes text through trafilatura (a maintained main-content extractor), PDF through pypdf, plain text
and JSON stay as they are; anything else is refused. `allowed_networks` lets an operator open internal
networks on purpose (WEB_FETCH_ALLOWED_NETWORKS); it is empty by default.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.tools.pdf import PdfUnreadable, pdf_text

MAX_REDIRECTS = 5
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Public-looking by the standard library's tables, yet not the open internet.
_NOT_PUBLIC = [
    ipaddress.ip_network(n) for n in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b:1::/48")
]


class FetchRefused(Exception):
    """The URL may not be fetched, or its answer not read; the message says why, for the model to read."""


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str  # after redirects
    content_type: str
    title: str
    text: str
    truncated: bool  # the body was longer than the limit: the text is of its beginning


def is_public(address: IPAddress) -> bool:
    """A unicast address on the open internet (IPv4 inside IPv6 judged as the IPv4 it carries)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    if any(address in network for network in _NOT_PUBLIC if network.version == address.version):
        return False
    return address.is_global and not address.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the system, and refuses a name any of whose addresses is not public."""

    def __init__(self, allowed_networks: Iterable[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed_networks)

    def allows(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in network for network in self.allowed)

    async def lookup(self, host: str, port: int, family: int) -> list[tuple[int, str]]:
        """(family, address) pairs: the system's answer, stubbed in tests."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        return [(info[0], str(info[4][0])) for info in infos]

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        try:
            found = await self.lookup(host, port, family)
        except OSError as exc:
            raise FetchRefused(f"{host}: the name does not resolve") from exc
        results: list[ResolveResult] = []
        for address_family, text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.allows(address):
                raise FetchRefused(f"{host} resolves to {address}, which is not on the public internet")
            results.append(
                {"hostname": host, "host": str(address), "port": port, "family": address_family,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}
            )  # fmt: skip
        if not results:
            raise FetchRefused(f"{host}: the name does not resolve")
        return results

    async def close(self) -> None:
        return None


def checked_url(url: str) -> str:
    """The URL if its form may be fetched; its host is judged when it is resolved."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"{url!r}: only http and https URLs are fetched")
    if not parts.hostname:
        raise FetchRefused(f"{url!r}: no host")
    if parts.username or parts.password:
        raise FetchRefused(f"{url!r}: URLs with credentials are not fetched")
    try:  # a literal address is judged here: no resolver sees it
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    raise FetchRefused(f"{url!r}: fetch by name, not by address ({literal})")


def readable(body: bytes, content_type: str, url: str) -> tuple[str, str]:
    """(title, text) of a body by its media type; FetchRefused for a type that has no text."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        import trafilatura

        html = body.decode("utf-8", errors="replace")
        extracted = trafilatura.bare_extraction(html, url=url, with_metadata=True, output_format="python")
        if extracted is None:
            return "", ""
        data: Any = extracted.as_dict() if hasattr(extracted, "as_dict") else extracted
        return str(data.get("title") or ""), str(data.get("text") or "")
    if kind == "application/pdf":  # the pdf tool's parser
        try:
            parsed = pdf_text(body, url)
        except PdfUnreadable as exc:
            raise FetchRefused(str(exc)) from exc
        return parsed.title, parsed.text
    if kind.startswith("text/") or kind in ("application/json", "application/xml"):
        return "", body.decode("utf-8", errors="replace")
    raise FetchRefused(f"{url}: {kind or 'no content type'} has no text to read")


def fetch_session(resolver: PublicOnlyResolver) -> aiohttp.ClientSession:
    """A session of its own for fetching: the resolver above, no DNS cache, no proxies, no cookies kept."""
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=20)
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True
    )


async def fetch_page(
    url: str, session: aiohttp.ClientSession, *, max_bytes: int = 2_000_000, timeout_seconds: float = 10.0
) -> FetchedPage:
    """The page at `url` as text. Raises FetchRefused (the reason, for the model) on any refusal or
    failure."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _fetch(url, session, max_bytes)
    except TimeoutError as exc:
        raise FetchRefused(f"{url}: no answer within {timeout_seconds:g} s") from exc
    except aiohttp.ClientError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, FetchRefused) else None
        if cause is not None:
            raise cause from exc
        raise FetchRefused(f"{url}: the fetch failed ({type(exc).__name__})") from exc


async def fetch_bytes(
    url: str, session: aiohttp.ClientSession, *, max_bytes: int, timeout_seconds: float = 10.0
) -> tuple[str, str, bytes]:
    """(final URL, content type, body) of a guarded fetch, the body whole: FetchRefused if it is longer than
    `max_bytes` (a file cut short is no file), or on any refusal or failure."""
    try:
        async with asyncio.timeout(timeout_seconds):
            final_url, content_type, body, truncated = await _get(url, session, max_bytes)
    except TimeoutError as exc:
        raise FetchRefused(f"{url}: no answer within {timeout_seconds:g} s") from exc
    except aiohttp.ClientError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, FetchRefused) else None
        raise (cause or FetchRefused(f"{url}: the fetch failed ({type(exc).__name__})")) from exc
    if truncated:
        raise FetchRefused(f"{url}: larger than {max_bytes // (1024 * 1024)} MB")
    return final_url, content_type, body


async def _fetch(url: str, session: aiohttp.ClientSession, max_bytes: int) -> FetchedPage:
    final_url, content_type, body, truncated = await _get(url, session, max_bytes)
    title, text = readable(body, content_type, final_url)
    return FetchedPage(final_url, content_type, title, text, truncated)


async def _get(url: str, session: aiohttp.ClientSession, max_bytes: int) -> tuple[str, str, bytes, bool]:
    """The body (at most `max_bytes` of it) at `url`, redirects followed by hand and each target checked."""
    headers = {"User-Agent": "HyperInfer-web_fetch/1.0", "Accept": "text/html, application/pdf, text/*;q=0.8"}
    for _ in range(MAX_REDIRECTS + 1):
        url = checked_url(url)
        async with session.get(url, allow_redirects=False, headers=headers) as response:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused(f"{url}: a redirect without a Location")
                url = urljoin(url, location)
                continue
            if response.status >= 400:
                raise FetchRefused(f"{url}: HTTP {response.status}")
            body = await response.content.read(max_bytes + 1)
            content_type = response.headers.get("Content-Type", "")
            return str(response.url), content_type, body[:max_bytes], len(body) > max_bytes
    raise FetchRefused(f"{url}: more than {MAX_REDIRECTS} redirects")

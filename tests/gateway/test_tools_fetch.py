"""web_fetch's fetcher against a real HTTP server on loopback: readable text from HTML, PDF and plain text,
within its size and time limits, and never a private address — by literal, by name, after a redirect, or
by a name that answers with a private address among public ones (DNS rebinding).

Loopback is refused like any private network, so the positive cases open 127.0.0.1 on purpose
(`allowed_networks`, what WEB_FETCH_ALLOWED_NETWORKS gives an operator) and give the server a name through a
stubbed system lookup.
"""

import asyncio
import ipaddress
import socket

import pytest
from aiohttp import web

from gateway.tools.fetch import (
    FetchRefused,
    PublicOnlyResolver,
    checked_url,
    fetch_page,
    fetch_session,
    is_public,
)
from tests.fakes.server import FakeServer

ARTICLE = """<!doctype html><html><head><title>The tides</title></head><body>
<nav>Home · About · Contact</nav>
<article><h1>The tides</h1>
<p>Tides are the rise and fall of sea levels caused by the gravitational forces of the Moon and the Sun.</p>
<p>Most places see two high tides and two low tides each lunar day, about every twelve hours and twenty-five
minutes, and the range between them changes with the phase of the Moon.</p></article>
<footer>Copyright 2026</footer></body></html>"""


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose page draws `text` (written by hand: pypdf reads, it does not typeset)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


def page(body: str | bytes, content_type: str):
    async def handler(request: web.Request) -> web.Response:
        if isinstance(body, str):
            return web.Response(text=body, content_type=content_type)
        return web.Response(body=body, content_type=content_type)

    return handler


def redirect(location: str):
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return handler


def site_app() -> web.Application:
    """Pages to fetch, and the ways a page can try to lead the fetcher astray."""
    app = web.Application()
    app.router.add_get("/article", page(ARTICLE, "text/html"))
    app.router.add_get("/paper.pdf", page(minimal_pdf("Hello PDF"), "application/pdf"))
    app.router.add_get("/notes.txt", page("plain notes", "text/plain"))
    app.router.add_get("/big.txt", page("x" * 50_000, "text/plain"))
    app.router.add_get("/image.png", page(b"\x89PNG....", "image/png"))
    app.router.add_get("/to-article", redirect("/article"))
    app.router.add_get("/to-internal", redirect("http://internal.test/secrets"))
    app.router.add_get("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
    app.router.add_get("/loop", redirect("/loop"))
    app.router.add_get("/slow", slow)
    return app


class StubResolver(PublicOnlyResolver):
    """The system lookup replaced by a table: name -> addresses."""

    def __init__(self, table: dict[str, list[str]], allowed: tuple[str, ...] = ()) -> None:
        super().__init__([ipaddress.ip_network(network) for network in allowed])
        self.table = table

    async def lookup(self, host: str, port: int, family: int) -> list[tuple[int, str]]:
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in self.table[host]]


def fetch(url: str, resolver: PublicOnlyResolver, **limits):
    async def go():
        async with fetch_session(resolver) as session:
            return await fetch_page(url, session, **limits)

    return asyncio.run(go())


@pytest.fixture
def site():
    with FakeServer(site_app()) as server:
        port = server.url.rsplit(":", 1)[1]
        resolver = StubResolver(
            {"docs.example.test": ["127.0.0.1"], "internal.test": ["10.0.0.5"]}, allowed=("127.0.0.1/32",)
        )
        yield f"http://docs.example.test:{port}", resolver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fd00::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "fd00:ec2::254",
    ],
)  # fmt: skip
def test_no_private_or_special_address_counts_as_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111"])
def test_public_addresses_do(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "http://user:pw@example.com/",
        "http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/", "http:///nohost",
    ],
)  # fmt: skip
def test_urls_of_the_wrong_form_are_refused_before_any_lookup(url):
    with pytest.raises(FetchRefused):
        checked_url(url)


def test_html_pdf_and_text_become_readable_text(site):
    base, resolver = site
    page = fetch(f"{base}/article", resolver)
    assert page.title == "The tides" and "gravitational forces of the Moon" in page.text
    assert "Home · About" not in page.text  # the main content, not the navigation
    assert fetch(f"{base}/paper.pdf", resolver).text == "Hello PDF"
    notes = fetch(f"{base}/notes.txt", resolver)
    assert (notes.text, notes.truncated) == ("plain notes", False)


def test_a_redirect_on_the_same_site_is_followed(site):
    base, resolver = site
    page = fetch(f"{base}/to-article", resolver)
    assert page.url == f"{base}/article" and page.title == "The tides"


@pytest.mark.parametrize("path", ["/to-internal", "/to-metadata", "/loop"])
def test_a_redirect_to_a_private_address_or_without_end_is_refused(site, path):
    base, resolver = site
    with pytest.raises(FetchRefused):
        fetch(f"{base}{path}", resolver)


def test_loopback_is_refused_unless_an_operator_opened_it(site):
    base, _ = site
    closed = StubResolver({"docs.example.test": ["127.0.0.1"]})
    with pytest.raises(FetchRefused, match="not on the public internet"):
        fetch(f"{base}/article", closed)


def test_a_name_with_one_private_address_among_public_ones_is_refused(site):
    base, _ = site
    rebinding = StubResolver({"docs.example.test": ["93.184.215.14", "127.0.0.1"]})
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1"):
        fetch(f"{base}/article", rebinding)


def test_a_name_that_does_not_resolve_and_a_body_without_text_are_refused(site):
    base, resolver = site
    with pytest.raises(FetchRefused, match="does not resolve"):
        fetch("http://nowhere.test/", resolver)
    with pytest.raises(FetchRefused, match="image/png"):
        fetch(f"{base}/image.png", resolver)


def test_size_and_time_are_bounded(site):
    base, resolver = site
    big = fetch(f"{base}/big.txt", resolver, max_bytes=1_000)
    assert big.truncated and len(big.text) == 1_000
    with pytest.raises(FetchRefused, match="no answer within"):
        fetch(f"{base}/slow", resolver, timeout_seconds=0.5)

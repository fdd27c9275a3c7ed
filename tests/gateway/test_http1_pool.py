"""The upstream client (gateway/upstreams/http1.py) and its connections over time, against raw HTTP/1.1
servers on loopback (tests/fakes/http1_servers.py): keep-alive and the ways a kept connection fails,
finishing a response (reused or hung up on), both timeouts, connecting (refused, TLS)."""

import asyncio
import socket
import ssl
import subprocess
import time

import pytest

from gateway.upstreams.http1 import HttpError, UpstreamClient
from tests.fakes.http1_servers import (
    CHUNKED_HEAD,
    LAST_CHUNK,
    SEEN_WITHIN_S,
    Peer,
    Request,
    Server,
    always,
    answer,
    body_of_a_post,
    chunk,
    closed_by_client,
    never_answer,
    requests_per_connection,
    run,
    upstream,
)

# --- keep-alive ---------------------------------------------------------------------------------------


def test_an_answer_with_connection_close_is_not_reused_even_while_the_server_keeps_it_open():
    async def scenario():
        async with Server(always(answer(b"once", "Connection: close"))) as server, upstream() as client:
            for _ in range(2):
                assert await body_of_a_post(client, server) == b"once"
            await closed_by_client(server.peers[0])
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_after_the_server_closed_a_kept_alive_connection_the_next_request_goes_on_a_new_one():
    """The server hangs up right after answering, without saying so (no Connection: close)."""

    async def answer_then_hang_up(peer: Peer, request: Request) -> None:
        peer.send(answer(b"from connection %d" % peer.number))
        peer.close()

    async def scenario():
        async with Server(answer_then_hang_up) as server, upstream() as client:
            for number in (1, 2):
                response = await client.post(server.url(), b"{}", {}, timeout=1)
                assert await response.read() == b"from connection %d" % number
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_a_request_that_meets_the_server_closing_its_idle_connection_is_sent_once_more_on_a_new_one():
    """The race every keep-alive client meets: the server's idle timeout fires as the request arrives, and it
    closes without answering. Nothing was answered, so the request goes again, once, on a new connection."""

    async def close_instead_of_a_second_answer(peer: Peer, request: Request) -> None:
        if len(peer.requests) == 2:
            peer.close()
        else:
            peer.send(answer(b"from connection %d" % peer.number))

    async def scenario():
        async with Server(close_instead_of_a_second_answer) as server, upstream() as client:
            for number in (1, 2):
                response = await client.post(server.url(), b"request %d" % number, {}, timeout=1)
                assert await response.read() == b"from connection %d" % number
        assert [[request.body for request in peer.requests] for peer in server.peers] == [
            [b"request 1", b"request 2"],
            [b"request 2"],
        ]

    run(scenario())


def test_a_new_connection_closed_before_any_answer_is_an_error_and_the_request_is_not_sent_again():
    async def hang_up(peer: Peer, request: Request) -> None:
        peer.close()

    async def scenario():
        async with Server(hang_up) as server, upstream() as client:
            with pytest.raises(HttpError, match="closed before the answer ended"):
                await client.post(server.url(), b"{}", {}, timeout=1)
        assert requests_per_connection(server) == [1]

    run(scenario())


def test_bytes_the_server_sends_on_an_idle_connection_get_it_dropped():
    idle = asyncio.Event()

    async def then_speak_out_of_turn(peer: Peer, request: Request) -> None:
        peer.send(answer(b"ok"))
        if peer.number == 1:
            await idle.wait()
            peer.send(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async def scenario():
        async with Server(then_speak_out_of_turn) as server, upstream() as client:
            assert await body_of_a_post(client, server) == b"ok"
            idle.set()
            await closed_by_client(server.peers[0])
            assert await body_of_a_post(client, server) == b"ok"
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_an_idle_connection_is_closed_once_older_than_keepalive_seconds():
    async def scenario():
        async with Server(always(answer(b"ok"))) as server, upstream(keepalive_seconds=0.2) as client:
            assert await body_of_a_post(client, server) == b"ok"
            idle_from = time.monotonic()
            await closed_by_client(server.peers[0])
            assert 0.19 <= time.monotonic() - idle_from < 0.6
            assert await body_of_a_post(client, server) == b"ok"
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_an_idle_connection_older_than_keepalive_seconds_is_not_reused_even_before_the_sweep():
    async def scenario():
        async with Server(always(answer(b"ok"))) as server, upstream(keepalive_seconds=0.1) as client:
            assert await body_of_a_post(client, server) == b"ok"
            time.sleep(0.15)  # blocks the event loop: the sweep, due at 0.1 s, has not run yet
            assert await body_of_a_post(client, server) == b"ok"
            await closed_by_client(server.peers[0])
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_closing_the_client_closes_its_idle_connections_and_refuses_new_requests():
    async def scenario():
        async with Server(always(answer(b"ok"))) as server:
            client = UpstreamClient()
            assert await body_of_a_post(client, server) == b"ok"
            await client.close()
            await closed_by_client(server.peers[0])
            with pytest.raises(HttpError, match="closed"):
                await client.post(server.url(), b"{}", {}, timeout=1)
        assert requests_per_connection(server) == [1]

    run(scenario())


# --- finishing a response -----------------------------------------------------------------------------


async def first_piece_then_wait(peer: Peer, request: Request) -> None:
    peer.send(CHUNKED_HEAD + chunk(b"data: first\n\n"))  # and the rest never comes


@pytest.mark.parametrize("finish", ["close", "release", "async with"])
def test_finishing_an_unread_stream_hangs_up_on_the_server_and_the_next_request_gets_a_new_connection(
    finish,
):
    """Hanging up is how an upstream still generating learns that nobody reads it any more."""

    async def scenario():
        async with Server(first_piece_then_wait) as server, upstream() as client:
            async with client.post(server.url(), b"{}", {}, timeout=1) as response:
                async for piece in response.chunks():
                    assert piece == b"data: first\n\n"
                    break
                if finish == "close":
                    response.close()
                elif finish == "release":
                    response.release()
                if finish != "async with":  # at once, not when the `async with` ends
                    await closed_by_client(server.peers[0])
            await closed_by_client(server.peers[0])
            async with client.post(server.url(), b"{}", {}, timeout=1):
                pass
        assert requests_per_connection(server) == [1, 1]

    run(scenario())


def test_an_answer_read_to_its_end_keeps_its_connection_whether_released_again_or_not():
    async def scenario():
        stream = CHUNKED_HEAD + chunk(b"a") + chunk(b"b") + LAST_CHUNK
        async with Server(always(stream)) as server, upstream() as client:
            for release_too in (False, True, False, True):
                response = await client.post(server.url(), b"{}", {}, timeout=1)
                assert [piece async for piece in response.chunks()] == [b"a", b"b"]
                if release_too:
                    response.release()
        assert requests_per_connection(server) == [4]

    run(scenario())


def test_finishing_a_finished_response_again_leaves_the_connection_to_the_request_it_now_carries():
    """A response lets go of its connection when finished; called again later (a `finally`, an `async with`),
    close() and release() must not touch the connection, which by then serves another request."""
    go_on = asyncio.Event()

    async def second_answer_held_back(peer: Peer, request: Request) -> None:
        if len(peer.requests) == 1:
            peer.send(answer(b"first"))
        else:
            peer.send(CHUNKED_HEAD + chunk(b"second, "))
            await go_on.wait()
            peer.send(chunk(b"to its end") + LAST_CHUNK)

    async def scenario():
        async with Server(second_answer_held_back) as server, upstream() as client:
            first = await client.post(server.url(), b"{}", {}, timeout=1)
            assert await first.read() == b"first"
            second = await client.post(server.url(), b"{}", {}, timeout=1)  # on the same connection
            first.close()
            first.release()
            first.raise_for_status()
            go_on.set()
            assert await second.read() == b"second, to its end"
            with pytest.raises(HttpError, match="already finished"):
                await first.read()
            third = await client.post(server.url(), b"{}", {}, timeout=1)
            assert await third.read() == b"second, to its end"
        assert requests_per_connection(server) == [3]

    run(scenario())


# --- timeouts -----------------------------------------------------------------------------------------


def test_timeout_bounds_the_wait_for_an_answer_and_hangs_up():
    async def scenario():
        async with Server(never_answer) as server, upstream() as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.post(server.url(), b"{}", {}, timeout=0.2)
            assert 0.19 <= time.monotonic() - started < 0.6
            await closed_by_client(server.peers[0])

    run(scenario())


def test_timeout_bounds_the_body_too_and_hangs_up_even_while_nobody_reads():
    async def scenario():
        async with Server(first_piece_then_wait) as server, upstream() as client:
            started = time.monotonic()
            response = await client.post(server.url(), b"{}", {}, timeout=0.2)
            await closed_by_client(server.peers[0])
            assert 0.19 <= time.monotonic() - started < 0.6
            with pytest.raises(TimeoutError):
                await response.read()

    run(scenario())


def test_timeout_bounds_connecting_a_tls_handshake_the_server_never_answers():
    """A TCP server that never speaks TLS: the handshake waits on it until the timeout, not the
    event loop's own 60 s, and the deadline is a TimeoutError like the others."""
    hung_up = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # the ClientHello, then the client's hang-up
        hung_up.set()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, upstream() as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.post(f"https://127.0.0.1:{port}/v1", b"{}", {}, timeout=0.2)
            assert 0.19 <= time.monotonic() - started < 0.6
            await asyncio.wait_for(hung_up.wait(), SEEN_WITHIN_S)

    run(scenario())


def test_read_timeout_bounds_a_silence_in_the_body_even_without_a_timeout():
    async def scenario():
        async with Server(first_piece_then_wait) as server, upstream() as client:
            response = await client.post(server.url(), b"{}", {}, timeout=None, read_timeout=0.2)
            pieces = []
            with pytest.raises(TimeoutError):
                async for piece in response.chunks():
                    pieces.append(piece)
                    silent_from = time.monotonic()
            assert 0.19 <= time.monotonic() - silent_from < 0.6
            assert pieces == [b"data: first\n\n"]
            await closed_by_client(server.peers[0])

    run(scenario())


def test_read_timeout_lets_a_stream_run_longer_than_it_while_each_silence_is_shorter():
    """The gaps (0.05 s) stay under read_timeout (0.15 s); the whole stream (0.3 s) is longer than it, and
    longer than `timeout`, which read_timeout replaces once the head has come."""

    async def steady(peer: Peer, request: Request) -> None:
        peer.send(CHUNKED_HEAD)
        for number in range(6):
            await asyncio.sleep(0.05)
            peer.send(chunk(b"%d" % number))
        peer.send(LAST_CHUNK)

    async def scenario():
        async with Server(steady) as server, upstream() as client:
            started = time.monotonic()
            response = await client.post(server.url(), b"{}", {}, timeout=0.15, read_timeout=0.15)
            assert await response.read() == b"012345"
            assert time.monotonic() - started > 0.25

    run(scenario())


# --- connecting ---------------------------------------------------------------------------------------


def test_a_refused_connection_is_an_error_naming_host_and_port():
    with socket.socket() as bound:  # bound, not listening: its port refuses connections and stays taken
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]

        async def scenario():
            async with upstream() as client:
                with pytest.raises(HttpError, match=f"cannot connect to 127.0.0.1:{port}"):
                    await client.post(f"http://127.0.0.1:{port}/v1", b"{}", {}, timeout=1)

        run(scenario())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (as an IP address SAN): (cert.pem, key.pem)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", key, "-out", cert),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def serving_tls(certificate: tuple[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_a_certificate_the_system_does_not_trust_is_refused(certificate, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def scenario():
        async with (
            Server(always(answer(b"ok")), tls=serving_tls(certificate)) as server,
            upstream() as client,
        ):
            with pytest.raises(HttpError, match="certificate verify failed"):
                await client.post(server.url(), b"{}", {}, timeout=1)
        assert server.peers == []

    run(scenario())


def test_a_trusted_certificate_serves_https(certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])  # ssl.create_default_context() trusts it then

    async def scenario():
        async with Server(always(answer(b"over tls")), tls=serving_tls(certificate)) as server:
            assert server.url().startswith("https://127.0.0.1:")
            async with upstream() as client:
                for _ in range(2):
                    response = await client.post(server.url(), b"secret", {}, timeout=1)
                    assert await response.read() == b"over tls"
        assert requests_per_connection(server) == [2]
        assert server.peers[0].requests[0].body == b"secret"
        assert server.peers[0].requests[0].header("Host") == f"127.0.0.1:{server.port}"

    run(scenario())

"""The meter's pipelined Redis connection (gateway/metering/resp.py) on a real Redis and on servers that
misbehave: commands packed as RESP, the URL's database, password, TLS and unix socket honoured; a lost,
silent or refusing Redis fails the calls in flight with redis-py's errors, the calls that come meanwhile share
one reconnection, and the next call reconnects."""

import asyncio
import ipaddress
import socket
import subprocess
import time
import uuid

import hiredis
import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis import exceptions

from gateway.metering import resp
from gateway.metering.resp import RedisNotAnswering, RespConnection, pack

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs Redis: set REDIS_URL=redis://… (CI does)"
)


@pytest.fixture
def client():
    return aioredis.Redis.from_url(settings.REDIS_URL)


def counter() -> str:
    return f"hi:test:resp:{uuid.uuid4().hex}"


def test_the_connection_selects_the_urls_database(client):
    """redis://host:port/N: the keys land in database N, as redis-py's would."""
    base, _, _ = settings.REDIS_URL.rpartition("/")
    other_db = 15 if not settings.REDIS_URL.endswith("/15") else 14

    async def scenario():
        connection, name = RespConnection(f"{base}/{other_db}"), counter()
        await connection.call(("SET", name, "here"))
        there = aioredis.Redis.from_url(f"{base}/{other_db}")
        found_there, found_here = await there.get(name), await client.get(name)
        await there.delete(name)
        await there.aclose()
        await client.aclose()
        connection.close()
        return found_there, found_here

    assert asyncio.run(scenario()) == (b"here", None)


def test_a_lost_connection_fails_the_calls_in_flight_and_the_next_call_reconnects(client):
    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        own_id = await connection.call(("CLIENT", "ID"))
        waiting = asyncio.ensure_future(connection.call(("BLPOP", name, 5)))  # in flight until killed
        await asyncio.sleep(0.1)
        await client.client_kill_filter(_id=own_id)
        try:
            await waiting
            lost = None
        except exceptions.ConnectionError as exc:
            lost = exc
        again = await connection.call(("INCRBY", name, 3))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return lost, again

    lost, again = asyncio.run(scenario())
    assert isinstance(lost, exceptions.ConnectionError)
    assert again == 3


def ping_a_fake_redis(answer: bytes | None, *, timeout: float) -> tuple[object, float]:
    """PING a loopback server that reads the command and then writes `answer` (None: nothing) and stays
    silent; what the call came to (its reply, or the error it raised) and how long it took."""

    async def scenario():
        async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
            await asyncio.sleep(10)

        server = await asyncio.start_server(fake, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = RespConnection(f"redis://127.0.0.1:{port}/0", timeout=timeout)
        started = time.monotonic()
        try:
            outcome: object = await connection.call(("PING",))
        except exceptions.RedisError as exc:
            outcome = exc
        took = time.monotonic() - started
        connection.close()
        server.close()
        return outcome, took

    return asyncio.run(scenario())


def test_a_silent_redis_times_out_rather_than_hangs():
    """A server that takes the connection and never answers: the call fails with TimeoutError after the
    connection's timeout, and does not wait for ever."""
    outcome, took = ping_a_fake_redis(None, timeout=0.3)
    assert isinstance(outcome, exceptions.TimeoutError)
    assert 0.3 <= took < 2


def test_calls_that_find_the_connection_gone_share_one_attempt_and_its_failure():
    """Every request's admission needs the connection: those that come while it reconnects to a Redis that
    takes connections and never answers (a partition behind a balancer, a stuck server) fail together after
    one attempt. Each trying in turn, the tenth waited ten timeouts."""

    async def scenario():
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(10)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = RespConnection(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        started = time.monotonic()
        calls = (connection.call(("PING",)) for _ in range(10))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        took = time.monotonic() - started
        connection.close()
        server.close()
        return outcomes, took

    outcomes, took = asyncio.run(scenario())
    assert all(isinstance(outcome, exceptions.TimeoutError) for outcome in outcomes)
    assert 0.3 <= took < 0.9


class SwitchableRedis:
    """A loopback server that answers PING with PONG and anything else with OK while `answering`, and
    otherwise reads and says nothing (its connections stay open: a partition, a stuck server)."""

    def __init__(self) -> None:
        self.answering = True

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands = hiredis.Reader()
        while data := await reader.read(65536):
            commands.feed(data)
            while (command := commands.gets()) is not False:
                while not self.answering:
                    await asyncio.sleep(0.01)
                writer.write(b"+PONG\r\n" if command[0] == b"PING" else b"+OK\r\n")
        writer.close()


def test_a_redis_that_stops_answering_is_found_out_once_and_probed_one_call_at_a_time(monkeypatch):
    """Once a command has waited STALL_SECONDS, calls are refused at once instead of queueing behind it to
    wait out the timeout each; after the connection fails, one call at a time tries again (at most every
    PROBE_SECONDS) while the others are refused at once; when Redis answers again, so do the calls."""
    monkeypatch.setattr(resp, "STALL_SECONDS", 0.2)
    monkeypatch.setattr(resp, "PROBE_SECONDS", 0.3)

    async def timed(call) -> tuple[object, float]:
        started = time.monotonic()
        try:
            outcome: object = await call
        except exceptions.RedisError as exc:
            outcome = exc
        return outcome, time.monotonic() - started

    async def scenario():
        redis = SwitchableRedis()
        connection = RespConnection(f"redis://127.0.0.1:{await redis.start()}/0", timeout=0.6)
        seen: dict[str, tuple[object, float]] = {"answering": await timed(connection.call(("PING",)))}
        redis.answering = False
        in_flight = asyncio.create_task(timed(connection.call(("PING",))))
        await asyncio.sleep(0.3)
        seen["stalled"] = await timed(connection.call(("PING",)))
        seen["in flight"] = await in_flight
        probe = asyncio.create_task(timed(connection.call(("PING",))))
        await asyncio.sleep(0.05)
        seen["while probing"] = await timed(connection.call(("PING",)))
        seen["probe"] = await probe
        seen["after the probe"] = await timed(connection.call(("PING",)))
        redis.answering = True
        await asyncio.sleep(0.3)
        seen["answering again"] = await timed(connection.call(("PING",)))
        seen["down_until"] = connection.down_until, 0.0
        connection.close()
        redis.server.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["answering"][0] == b"PONG"
    assert isinstance(seen["in flight"][0], exceptions.TimeoutError) and seen["in flight"][1] >= 0.6
    for refused in ("stalled", "while probing", "after the probe"):
        outcome, took = seen[refused]
        assert isinstance(outcome, RedisNotAnswering) and took < 0.05, (refused, seen[refused])
    assert isinstance(seen["probe"][0], exceptions.TimeoutError) and seen["probe"][1] >= 0.6
    assert seen["answering again"][0] == b"PONG"
    assert seen["down_until"][0] is None


def test_a_server_that_does_not_speak_resp_fails_the_call_rather_than_hangs():
    """Something else on the port (an HTTP server, say): its answer is not RESP, so the connection is
    dropped and the call fails at once with ConnectionError."""
    outcome, took = ping_a_fake_redis(b"HTTP/1.1 400 Bad Request\r\n\r\n", timeout=5)
    assert isinstance(outcome, exceptions.ConnectionError) and "not RESP" in str(outcome)
    assert took < 2  # not the 5 s timeout


def test_a_caller_that_stops_waiting_leaves_the_replies_in_step(client):
    """Its command still runs; its reply is read and dropped, so the next call gets its own."""

    async def scenario():
        connection, name = RespConnection(settings.REDIS_URL), counter()
        await connection.call(("PING",))
        abandoned = asyncio.ensure_future(connection.call(("INCRBY", name, 1)))
        await asyncio.sleep(0)  # queued
        abandoned.cancel()
        next_reply = await connection.call(("INCRBY", name, 10))
        await client.delete(name)
        await client.aclose()
        connection.close()
        return abandoned.cancelled(), next_reply

    assert asyncio.run(scenario()) == (True, 11)


def test_a_password_redis_does_not_want_is_refused_by_name():
    async def scenario():
        base = settings.REDIS_URL.split("://", 1)[1]
        connection = RespConnection(f"redis://:not-the-password@{base}")
        try:
            await connection.call(("PING",))
        except exceptions.ConnectionError as exc:
            return str(exc)
        return "answered"

    assert "Redis refused the connection" in asyncio.run(scenario())


def test_commands_are_packed_as_resp_bulk_strings():
    assert pack(("EVALSHA", b"ab", 2, "é", 1.5)) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$2\r\n\xc3\xa9\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(TypeError, match="bool"):
        pack(("SET", "k", True))


def _self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    loopback = ipaddress.ip_address("127.0.0.1")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(loopback)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_redis(tmp_path):
    """A real redis-server speaking TLS only, on a free loopback port."""
    cert, key = _self_signed(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", cert,
         "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert server.poll() is None and time.monotonic() < deadline, "the TLS redis-server did not start"
        time.sleep(0.05)
    yield port, cert
    server.terminate()
    server.wait(10)


def test_rediss_checks_the_servers_certificate_as_redis_py_does(tls_redis):
    """`rediss://`: TLS with the URL's ssl_* options; by default the certificate must be trusted."""
    port, cert = tls_redis

    async def scenario():
        trusted = RespConnection(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")
        answered = await trusted.call(("ECHO", "over tls"))
        trusted.close()
        untrusted = RespConnection(f"rediss://127.0.0.1:{port}/0", connect_timeout=2)
        try:
            await untrusted.call(("PING",))
            refused = None
        except exceptions.ConnectionError as exc:
            refused = str(exc)
        unchecked = RespConnection(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")
        waved_through = await unchecked.call(("PING",))
        unchecked.close()
        return answered, refused, waved_through

    answered, refused, waved_through = asyncio.run(scenario())
    assert answered == b"over tls"
    assert refused is not None and "CERTIFICATE_VERIFY_FAILED" in refused
    assert waved_through == b"PONG"


def test_a_unix_socket_url_connects_to_its_socket_and_database(tmp_path):
    """`unix:///path?db=N`, as redis-py reads it: a real redis-server listening on a socket only."""
    path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not path.exists():
        assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)

    async def scenario():
        connection = RespConnection(f"unix://{path}?db=3")
        await connection.call(("SET", "where", "db 3"))
        connection.close()
        there = aioredis.Redis(unix_socket_path=str(path), db=3)
        found = await there.get("where")
        await there.aclose()
        return found

    try:
        assert asyncio.run(scenario()) == b"db 3"
    finally:
        server.terminate()
        server.wait(10)

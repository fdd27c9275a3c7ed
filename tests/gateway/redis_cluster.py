"""A real Redis Cluster for the tests (ADR 0017): three `redis-server` processes in cluster mode on loopback
ports, no replicas, no persistence, joined by `redis-cli --cluster create`; started once per session, on
first use, and stopped at its end. Registered as a plugin by tests/conftest.py.

`meter_redis` runs a test twice: with the Redis meter on REDIS_URL's plain Redis, and on this cluster."""

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NODES = 3
CLUSTER_BUS_OFFSET = 10_000  # each node also listens on its port + 10000 for the other nodes


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free as well."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        bus = port + CLUSTER_BUS_OFFSET
        if port not in taken and bus < 65_536 and _port_is_free(bus):
            return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None, f"redis-server on port {port} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"redis-server on port {port} did not start"
        time.sleep(0.02)


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@dataclass
class RedisClusterServers:
    """The cluster's nodes; `url` names the first (a cluster client learns the others from it)."""

    workdir: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for node in range(NODES):
            port = _free_cluster_port(set(self.ports))
            command = [
                "redis-server",
                "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.workdir),
                "--cluster-enabled", "yes", "--cluster-config-file", str(self.workdir / f"nodes-{node}.conf"),
                "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            self.ports.append(port)
        for port, process in zip(self.ports, self.processes, strict=True):
            _wait_listening(port, process)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        _cli(self.ports[0], "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes")
        self._wait_ok()

    def _wait_ok(self, timeout: float = 20) -> None:
        """Until every node says the cluster is whole (all slots served, every node known)."""
        deadline = time.monotonic() + timeout
        while not all("cluster_state:ok" in _cli(port, "cluster", "info") for port in self.ports):
            assert time.monotonic() < deadline, "the Redis Cluster did not reach cluster_state:ok"
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def flush(self) -> None:
        for port in self.ports:
            _cli(port, "flushall")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(params=["standalone", "cluster"])
def meter_redis(request: pytest.FixtureRequest, settings) -> Iterator[str]:
    """The Redis meter's Redis: REDIS_URL's plain Redis, or (METER_REDIS_CLUSTER) the session's cluster."""
    from billing import mirror

    settings.GATEWAY_METER = "redis"
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        settings.METER_REDIS_URL, settings.METER_REDIS_CLUSTER = cluster.url, True
    mirror.sync_client.cache_clear()
    yield request.param
    mirror.sync_client.cache_clear()

"""A node of the meter's Redis Cluster that stops answering without refusing (its process stopped: the
kernel still takes its connections and acknowledges what is sent): once a reservation on it has waited
STALL_SECONDS, the next ones on its shards are refused at once rather than each waiting the 5 s socket
timeout (gateway/metering/shard_watch.py); workspaces on the other nodes are served throughout; once the node
answers again, so do its shards: the probes waited for it meanwhile, one at a time."""

import asyncio
import signal
import subprocess
import time

import pytest

from billing import mirror
from core.errors import ApiError
from gateway.metering import resp
from gateway.metering.redis_meter import _shard_watch
from tests.factories import make_user, make_workspace
from tests.gateway.redis_meter_support import caller_for, reserve, run

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

STOPPED_SECONDS = (
    4.5  # within the socket timeout (5 s): without the watch, every call waits it out and succeeds
)


@pytest.fixture
def cluster_meter(redis_cluster, settings):
    settings.GATEWAY_METER = "redis"
    settings.METER_REDIS_URL, settings.METER_REDIS_CLUSTER = redis_cluster.url, True
    mirror.sync_client.cache_clear()
    _shard_watch.forget()
    yield redis_cluster
    _shard_watch.forget()
    redis_cluster.flush()  # its holds, never settled: another test's reaper would count them
    mirror.sync_client.cache_clear()


def node_process(cluster, key: str) -> subprocess.Popen:
    """The redis-server process serving `key`'s slot."""
    slot = int(subprocess.check_output(["redis-cli", "-p", str(cluster.ports[0]), "cluster", "keyslot", key]))
    for line in (
        subprocess.check_output(["redis-cli", "-p", str(cluster.ports[0]), "cluster", "nodes"])
        .decode()
        .splitlines()
    ):
        fields = line.split()
        port = int(fields[1].split(":")[1].split("@")[0])
        for served in fields[8:]:
            low, _, high = served.partition("-")
            if int(low) <= slot <= int(high or low):
                return cluster.processes[cluster.ports.index(port)]
    raise AssertionError(f"no node serves slot {slot}")


def test_a_silent_node_is_found_out_once_and_its_shards_probed_while_the_others_serve(cluster_meter):
    owner = make_user()
    workspaces = [make_workspace(owner=owner, credits_micro_usd=5_000_000) for _ in range(12)]
    by_node: dict[int, list] = {}
    for workspace in workspaces:
        by_node.setdefault(
            node_process(cluster_meter, mirror.names(workspace.pk).workspace_hash).pid, []
        ).append(workspace)
    assert len(by_node) >= 2, "the workspaces landed on one node"
    (stopped_pid, silent), (_, served) = list(by_node.items())[:2]
    stopped = next(process for process in cluster_meter.processes if process.pid == stopped_pid)
    silent_caller, served_caller = caller_for(silent[0]), caller_for(served[0])

    async def timed(caller) -> tuple[float, float, bool]:
        started = time.monotonic()
        try:
            await reserve(caller, f"r-{time.monotonic_ns()}")
            ok = True
        except ApiError:
            ok = False
        return started, time.monotonic() - started, ok

    async def scenario():
        await reserve(silent_caller, "warm-1")  # both mirrors loaded, connections open
        await reserve(served_caller, "warm-2")
        stopped.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            calls, beside = [], []
            while time.monotonic() - stopped_at < STOPPED_SECONDS - 0.5:
                calls.append(asyncio.create_task(timed(silent_caller)))
                beside.append(await timed(served_caller))
                await asyncio.sleep(0.2)
            await asyncio.sleep(stopped_at + STOPPED_SECONDS - time.monotonic())
        finally:
            stopped.send_signal(signal.SIGCONT)
        done = await asyncio.gather(*calls)
        await asyncio.sleep(resp.PROBE_SECONDS + 0.2)
        after = await timed(silent_caller)
        return stopped_at, done, beside, after

    stopped_at, done, beside, after = run(scenario())
    found_out = stopped_at + resp.STALL_SECONDS + 0.3
    early = [(took, ok) for started, took, ok in done if started < stopped_at + resp.STALL_SECONDS - 0.3]
    late = [(took, ok) for started, took, ok in done if started > found_out]
    assert early and all(ok for _, ok in early)  # waited for the node, and were answered when it was back
    refused = [took for took, ok in late if not ok]
    probes = [took for took, ok in late if ok]  # one at a time, each PROBE_SECONDS at most often
    assert len(refused) >= 3 and all(took < 0.1 for took in refused)  # refused at once
    assert len(probes) <= STOPPED_SECONDS / resp.PROBE_SECONDS
    assert all(ok and took < 0.1 for _, took, ok in beside)  # the other node's workspaces, as ever
    assert after[2] and after[1] < 0.5  # the node back: its shards probed and served

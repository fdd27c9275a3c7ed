"""The CPU time Redis and PostgreSQL spend, read around a soak so that it prints what a gateway request costs
them too (docs/scaling.md sizes both from these figures; on a saturated host they count against the
throughput as much as the gateway's own processes do).

Redis reports its own (`INFO cpu`), wherever it runs. PostgreSQL's is read from /proc, so only for a server
on this machine: every `postgres` process's user + system time, plus what the postmaster collected from
backends that exited meanwhile (a connection closed during the soak took its backend's time with it). Both
are the whole server's: whatever else it served in the same seconds counts too, so run it on a quiet machine.
"""

from collections.abc import Callable
from urllib.parse import urlsplit

import redis

from bench.cpu_time import CLOCK_TICKS, proc_stats

Reader = Callable[[], float | None]

_LOOPBACK = {"", "localhost", "127.0.0.1", "::1"}  # "": a Unix socket


def redis_cpu_seconds(url: str) -> float | None:
    """Redis's user + system CPU seconds since it started, or None if it does not answer."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        info = client.info("cpu")
    except redis.RedisError:
        return None
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def postgres_cpu_seconds(url: str) -> float | None:
    """The local PostgreSQL server's CPU seconds so far (its processes', and its exited backends'), or None
    for a server on another host or where /proc cannot tell."""
    if (urlsplit(url).hostname or "") not in _LOOPBACK:
        return None
    all_stats = proc_stats()
    if all_stats is None:
        return None
    # pid -> (parent pid, the stat fields after the name)
    stats = {
        stat.pid: (int(stat.fields[1]), stat.fields)
        for stat in all_stats
        if stat.name in (b"postgres", b"postmaster")
    }
    if not stats:
        return None
    total = 0
    for parent, fields in stats.values():
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if parent not in stats:  # the postmaster: its reaped children's time too
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / CLOCK_TICKS


def readers(*, redis_url: str | None, database_url: str | None) -> dict[str, Reader]:
    """The services a soak reads around it, by the name it prints."""
    found: dict[str, Reader] = {}
    if redis_url:
        found["Redis"] = lambda: redis_cpu_seconds(redis_url)
    if database_url and database_url.startswith(("postgres://", "postgresql://")):
        found["PostgreSQL"] = lambda: postgres_cpu_seconds(database_url)
    return found

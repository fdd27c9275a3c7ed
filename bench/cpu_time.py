"""CPU time as Linux's /proc tells it: each process's (its stat line), a process group's, the whole host's.
The bench reads them around each cell and soak (bench/cells.py, bench/soak.py, bench/services_cpu.py)."""

import os
from collections.abc import Iterator
from typing import NamedTuple


class ProcStat(NamedTuple):
    """One process's /proc/<pid>/stat: its name and the fields after it (field 3, the state, is [0])."""

    pid: int
    name: bytes
    fields: list[bytes]


def proc_stats() -> Iterator[ProcStat] | None:
    """Every live process's stat line (Linux /proc), or None where there is no /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None

    def read() -> Iterator[ProcStat]:
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    raw = stat.read()
            except OSError:
                continue  # exited meanwhile
            name = raw[raw.index(b"(") + 1 : raw.rindex(b")")]
            yield ProcStat(int(entry), name, raw[raw.rindex(b")") + 2 :].split())

    return read()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(*pgids: int) -> float | None:
    """User + system CPU time of every live process in these process groups (Linux /proc), or None."""
    stats = proc_stats()
    if stats is None:
        return None
    total, seen = 0, False
    for stat in stats:
        if int(stat.fields[2]) not in pgids:  # field 5: pgrp
            continue
        total += int(stat.fields[11]) + int(stat.fields[12])  # fields 14, 15: utime, stime
        seen = True
    return total / CLOCK_TICKS if seen else None


def host_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [float(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user … steal; guest time is already counted in user
    return total - idle, total

"""The memory of a server's worker processes, from Linux /proc: what the soak samples.

RSS (`VmRSS` in /proc/<pid>/status) is what the brief and most dashboards quote, but it counts the pages a
worker shares with the supervisor and its sibling (the interpreter, the imported modules) as its own. USS
(the private pages: `Private_Clean` + `Private_Dirty` in /proc/<pid>/smaps_rollup) is what a leak grows,
and PSS splits the shared pages between the processes that map them. smaps_rollup needs Linux 4.14 and the
right to read the process (the same user); without it only RSS is reported.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# multiprocessing's helper, started by uvicorn's supervisor beside its workers (the spawn context): it
# serves no request, so it is not a worker.
NOT_WORKERS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


@dataclass(frozen=True)
class Memory:
    """One process's memory at one moment, in KiB."""

    rss_kb: int
    uss_kb: int | None = None
    pss_kb: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def children(pid: int) -> list[int]:
    """The live processes whose parent is pid: from /proc/<pid>/task/*/children (one small read per
    thread), else by reading every process's parent (field 4 of /proc/<child>/stat)."""
    try:
        lists = [task / "children" for task in Path(f"/proc/{pid}/task").iterdir()]
        return sorted({int(child) for path in lists for child in path.read_text().split()})
    except OSError:
        pass  # the process is gone, or a kernel without CONFIG_PROC_CHILDREN
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_bytes()
        except OSError:
            continue
        if int(raw[raw.rindex(b")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def workers(supervisor: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children, without multiprocessing's helpers."""
    found = []
    for pid in children(supervisor):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if not any(marker in cmdline for marker in NOT_WORKERS):
            found.append(pid)
    return found


def read(pid: int) -> Memory | None:
    """The process's RSS, and its USS and PSS where smaps_rollup is readable; None once it is gone."""
    fields = _kib_fields(Path(f"/proc/{pid}/status"))
    if "VmRSS" not in fields:
        return None  # gone, or a zombie
    rollup = _kib_fields(Path(f"/proc/{pid}/smaps_rollup"))
    uss = None
    if "Private_Clean" in rollup and "Private_Dirty" in rollup:
        uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return Memory(fields["VmRSS"], uss, rollup.get("Pss"))


def _kib_fields(path: Path) -> dict[str, int]:
    """The "Name:   1234 kB" lines of a /proc file; empty when it cannot be read."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[name] = int(parts[0])
    return values

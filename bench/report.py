"""The machine, the settings and one table per mode, as text and as JSON."""

import math
import os
import platform
from importlib import metadata
from typing import Any

from bench.load import CellResult

PACKAGES = ("django", "uvicorn", "uvloop", "httptools", "aiohttp", "channels", "psycopg", "redis")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
    }


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of unsorted values, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def _diff_ms(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{(a - b) * 1000:+.1f}"


def cell_summary(cell: CellResult) -> dict[str, Any]:
    return {
        "target": cell.target,
        "stream": cell.stream,
        "concurrency": cell.concurrency,
        "duration_s": cell.duration,
        "measured_ok": cell.ok,
        "requests_per_s": round(cell.rps, 1),
        "sent": cell.sent,
        "answered_2xx": cell.answered,
        "p50_ms": _round_ms(percentile(cell.latencies, 50)),
        "p90_ms": _round_ms(percentile(cell.latencies, 90)),
        "p99_ms": _round_ms(percentile(cell.latencies, 99)),
        "max_ms": _round_ms(max(cell.latencies) if cell.latencies else None),
        "ttfb_p50_ms": _round_ms(percentile(cell.ttfbs, 50)),
        "ttfb_p99_ms": _round_ms(percentile(cell.ttfbs, 99)),
        "errors": dict(cell.errors),
        "error_samples": dict(cell.error_samples),
        "cpu_seconds": None if cell.cpu_seconds is None else round(cell.cpu_seconds, 3),
        "host_cpu_busy_percent": None if cell.host_busy is None else round(cell.host_busy * 100, 1),
        "cpu_ms_per_request": (
            round(cell.cpu_seconds * 1000 / cell.sent, 3)
            if cell.cpu_seconds is not None and cell.sent
            else None
        ),
        "writer_cpu_ms_per_request": (
            round(cell.writer_cpu_seconds * 1000 / cell.sent, 3)
            if cell.writer_cpu_seconds is not None and cell.sent
            else None
        ),
        "python_calls": cell.calls,
        "python_calls_per_request": None
        if cell.calls is None or not cell.sent
        else round(cell.calls / cell.sent),
    }


def _round_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _calls_per_request(cell: CellResult) -> float | None:
    return cell.calls / cell.sent if cell.calls is not None and cell.sent else None


def _cpu_per_request(cell: CellResult) -> float | None:
    return cell.cpu_seconds / cell.sent if cell.cpu_seconds is not None and cell.sent else None


def _writer_cpu_per_request(cell: CellResult) -> float | None:
    return cell.writer_cpu_seconds / cell.sent if cell.writer_cpu_seconds is not None and cell.sent else None


def table(rows: list[tuple[CellResult, ...]], stream: bool, baseline: str = "bare") -> str:
    """One row per concurrency: direct, the bare proxy and the gateway side by side (and LiteLLM, when it
    is a target: a fourth cell in each row), and the gateway's cost measured against the bare proxy (the
    floor for a Python gateway on this stack), or against the metered floor (`baseline` "floor")."""
    litellm = any(len(row) > 3 for row in rows)
    b = baseline
    letters = f"d/{b[0]}/g/l" if litellm else f"d/{b[0]}/g"
    header = ["conc", "direct r/s", f"{b} r/s", "gw r/s"]
    header += ["litellm r/s", f"gw/{b}", "gw/litellm"] if litellm else [f"gw/{b}"]
    header += [f"{b} p50", "gw p50", "gw p99", "+p50"]
    if stream:
        header += [f"{b} ttfb50", "gw ttfb50", "+ttfb50"]
    writer = any(cells[2].writer_cpu_seconds is not None for cells in rows)
    header += [f"{b} cpu/req", "gw cpu/req", *(["of it writer"] if writer else []), f"cpu gw/{b}"]
    header += [f"host cpu {letters}", f"errors {letters}"]
    counted = any(cell.calls is not None for cells in rows for cell in cells)
    if counted:
        header += [f"{b} calls/req", "gw calls/req", f"calls gw/{b}"]
    lines = [header]
    for cells in rows:
        direct, bare, gateway = cells[:3]
        b50, g50 = percentile(bare.latencies, 50), percentile(gateway.latencies, 50)
        row = [str(direct.concurrency), *(f"{cell.rps:,.0f}" for cell in cells[:3])]
        if litellm:
            row += [f"{cells[3].rps:,.0f}", _share(gateway, bare), _times(gateway, cells[3])]
        else:
            row += [_share(gateway, bare)]
        row += [_ms(b50), _ms(g50), _ms(percentile(gateway.latencies, 99)), _diff_ms(g50, b50)]
        if stream:
            bt, gt = percentile(bare.ttfbs, 50), percentile(gateway.ttfbs, 50)
            row += [_ms(bt), _ms(gt), _diff_ms(gt, bt)]
        bare_cpu, gw_cpu = _cpu_per_request(bare), _cpu_per_request(gateway)
        row += ["-" if bare_cpu is None else f"{bare_cpu * 1000:.2f} ms"]
        row += ["-" if gw_cpu is None else f"{gw_cpu * 1000:.2f} ms"]
        if writer:
            writer_cpu = _writer_cpu_per_request(gateway)
            row += ["-" if writer_cpu is None else f"{writer_cpu * 1000:.2f} ms"]
        row += [f"{gw_cpu / bare_cpu:.1f}x" if gw_cpu and bare_cpu else "-"]
        row += ["/".join(_percent(cell.host_busy) for cell in cells)]
        row += ["/".join(str(cell.error_count) for cell in cells)]
        if counted:
            bare_calls, gw_calls = _calls_per_request(bare), _calls_per_request(gateway)
            row += ["-" if bare_calls is None else f"{bare_calls:,.0f}"]
            row += ["-" if gw_calls is None else f"{gw_calls:,.0f}"]
            row += [f"{gw_calls / bare_calls:.1f}x" if gw_calls and bare_calls else "-"]
        lines.append(row)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def _share(part: CellResult, whole: CellResult) -> str:
    return f"{part.rps / whole.rps:.0%}" if whole.rps else "-"


def _times(faster: CellResult, slower: CellResult) -> str:
    return f"{faster.rps / slower.rps:.1f}x" if slower.rps else "-"


def error_lines(cells: list[CellResult]) -> list[str]:
    lines = []
    for cell in cells:
        mode = "stream" if cell.stream else "nonstream"
        for kind, count in cell.errors.most_common():
            sample = " ".join(cell.error_samples.get(kind, "").split())
            lines.append(f"  {mode} c={cell.concurrency} {cell.target}: {count} x {kind}: {sample[:300]}")
    return lines


def machine_text(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    return "\n".join(
        [
            f"Machine:  {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
            f"{info['memory_gb']} GB RAM",
            f"          {info['os']}; {info['python']}",
            f"          {packages}",
        ]
    )

"""What the figures were measured on, and CPU time and memory of processes and cores, read
from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """CPUs and `uname`, for a report's header."""
    return {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None if it says none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def ram_gib() -> float:
    """Total memory in GiB from /proc/meminfo (NaN if unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _stat_cpu(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads), or of its thread `task`;
    0.0 once it is gone."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        return _stat_cpu(Path(path).read_text())
    except OSError:
        return 0.0


def cpu_by_command(names: tuple[str, ...] = ("postgres", "redis-server")) -> dict[int, float]:
    """CPU seconds so far of every process whose command name is one of `names`, by pid
    (PostgreSQL: the postmaster, its backends and workers, whoever they serve)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")] in names:
            found[int(entry.name)] = _stat_cpu(stat)
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two `cpu_by_command` readings (processes that ended in between
    are lost; new ones count from 0)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values]
            idle = numbers[3] + numbers[4]
            out[name] = (sum(numbers[:8]) - idle, sum(numbers[:8]))
    return out


def core_busy(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Per core, the percentage of time busy since the `core_times` reading `before`."""
    after = core_times()
    return {
        name: round(100 * (after[name][0] - b[0]) / max(1, after[name][1] - b[1]), 1)
        for name, b in before.items()
    }


def proc_status(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon in KiB, open file descriptors) of process `pid`. RssAnon is the heap;
    VmRSS also counts file pages (libraries, the database) that the page cache may drop."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("RssAnon", 0), len(os.listdir(f"/proc/{pid}/fd"))

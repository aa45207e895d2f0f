"""CPU accounting from /proc (Linux), shared by the benchmarks: how much the machine was busy, and how much
of that a given process tree used, so a figure can say whether other jobs shared the cores."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the machine has spent so far, all cores (user+nice+system+irq+softirq+steal)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def proc_table() -> dict[int, tuple[int, float, float]]:
    """Every live process: pid → (parent pid, its own CPU seconds (utime+stime), the CPU seconds of the
    children it has reaped (cutime+cstime))."""
    out: dict[int, tuple[int, float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            f = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (
            int(f[1]),
            (int(f[11]) + int(f[12])) / TICKS,
            (int(f[13]) + int(f[14])) / TICKS,
        )
    return out


def process_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """utime+stime of `pid`; with `with_children`, plus the children it has reaped and its live children
    (PostgreSQL's postmaster and its backends, uvicorn and its workers). 0 when the process is gone."""
    total = 0.0
    for this, (parent, own, reaped) in proc_table().items():
        if this == pid:
            total += own + (reaped if with_children else 0.0)
        elif with_children and parent == pid:
            total += own
    return total

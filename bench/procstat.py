"""Resource use of a process and its children from /proc: CPU seconds, RSS, open descriptors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    """One reading of a process tree (the process and its live direct children)."""

    cpu_s: float
    """utime + stime of the process, plus those of its live children."""
    main_cpu_s: float
    """utime + stime of the process alone."""
    rss_kb: int
    """VmRSS of the process and its live children."""
    main_rss_kb: int
    fds: int
    """Open file descriptors of the process alone."""


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _rss_kb(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Live direct children of `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and fields[1] == str(pid):
                out.append(int(entry))
    return out


def usage(pid: int) -> Usage | None:
    """A reading of `pid` and its live children; None if `pid` is gone."""
    fields = _stat_fields(str(pid))
    if fields is None:
        return None
    main_cpu = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    cpu, main_rss = main_cpu, _rss_kb(str(pid))
    rss = main_rss
    for child in children(pid):
        child_fields = _stat_fields(str(child))
        if child_fields is not None:
            cpu += (int(child_fields[11]) + int(child_fields[12])) / _TICKS_PER_S
            rss += _rss_kb(str(child))
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = 0
    return Usage(cpu, main_cpu, rss, main_rss, fds)


def cpu_s(pids: list[int]) -> float:
    """utime + stime of the given processes (each alone), summed; gone ones count 0."""
    total = 0.0
    for pid in pids:
        fields = _stat_fields(str(pid))
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return total

"""The protocol every capacity source follows, and how the agent adjusts what a source reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from computenet.types import CapacityReport


class CapacityError(RuntimeError):
    """A capacity source could not be probed (missing command, unparsable output)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Resources one running attempt holds, as the agent accounts them."""

    accelerator: str
    count: int
    cpu_cores: float
    memory_gb: float


class CapacitySource(Protocol):
    """Probes the site's capacity; `probe` may block briefly (it runs in a worker thread)."""

    name: str
    tracks_usage: bool
    """True if the probe itself sees what running work holds (Slurm); else the agent adds it."""

    def probe(self) -> CapacityReport:
        """Return the current capacity; raises CapacityError if it cannot be determined."""
        ...


def apply_usage(snap: CapacityReport, usage: Iterable[Usage]) -> CapacityReport:
    """Count the agent's own running attempts as in use (for sources that cannot see them)."""
    in_use: dict[str, int] = {}
    cpu = mem = 0.0
    models = [p.model for p in snap.pools]
    for item in usage:
        model = item.accelerator or next(iter(models), "")
        if item.count and model:
            in_use[model] = in_use.get(model, 0) + item.count
        cpu += item.cpu_cores
        mem += item.memory_gb
    pools = tuple(replace(p, in_use=min(p.total, in_use.get(p.model, 0))) for p in snap.pools)
    return replace(
        snap,
        pools=pools,
        cpu_cores_free=max(0.0, snap.cpu_cores_free - cpu),
        memory_gb_free=max(0.0, snap.memory_gb_free - mem),
    )


def apply_drain(snap: CapacityReport) -> CapacityReport:
    """A drained site offers nothing new: allocatable 0 everywhere, no free CPU or memory."""
    pools = tuple(replace(p, allocatable=0) for p in snap.pools)
    return replace(snap, pools=pools, cpu_cores_free=0.0, memory_gb_free=0.0)

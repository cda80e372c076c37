"""The protocol every capacity source follows, and how the agent adjusts what a source reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from computenet.types import CapacityReport
from site_agent.energy_schedule import EnergyReading


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


def _own(snap: CapacityReport, usage: Iterable[Usage]) -> tuple[dict[str, int], float, float]:
    """Cards per pool model, cores and memory that the agent's own attempts hold."""
    cards: dict[str, int] = {}
    cpu = mem = 0.0
    models = [p.model for p in snap.pools]
    for item in usage:
        model = item.accelerator or next(iter(models), "")
        if item.count and model:
            cards[model] = cards.get(model, 0) + item.count
        cpu += item.cpu_cores
        mem += item.memory_gb
    return cards, cpu, mem


def apply_usage(snap: CapacityReport, usage: Iterable[Usage]) -> CapacityReport:
    """Count the agent's own running attempts as in use (for sources that cannot see them)."""
    cards, cpu, mem = _own(snap, usage)
    pools = tuple(replace(p, in_use=min(p.total, cards.get(p.model, 0))) for p in snap.pools)
    return replace(
        snap,
        pools=pools,
        cpu_cores_free=max(0.0, snap.cpu_cores_free - cpu),
        memory_gb_free=max(0.0, snap.memory_gb_free - mem),
    )


def mark_federation(snap: CapacityReport, usage: Iterable[Usage]) -> CapacityReport:
    """Say how much of what is busy the agent's federation attempts hold.

    The broker subtracts this from `in_use` to learn what local users hold, so its ledger and
    the site's report never count the same card twice. It is capped at what the source sees
    busy (a Slurm job still queued holds nothing yet).
    """
    cards, cpu, mem = _own(snap, usage)
    pools = tuple(
        replace(p, federation_in_use=min(p.in_use, cards.get(p.model, 0))) for p in snap.pools
    )
    return replace(
        snap,
        pools=pools,
        federation_cpu_cores=min(max(0.0, snap.cpu_cores - snap.cpu_cores_free), cpu),
        federation_memory_gb=min(max(0.0, snap.memory_gb - snap.memory_gb_free), mem),
    )


def apply_drain(snap: CapacityReport) -> CapacityReport:
    """A drained site offers nothing new: allocatable 0 everywhere, no free CPU or memory."""
    pools = tuple(replace(p, allocatable=0) for p in snap.pools)
    return replace(snap, pools=pools, cpu_cores_free=0.0, memory_gb_free=0.0)


def with_energy(snap: CapacityReport, reading: EnergyReading) -> CapacityReport:
    """The report carrying the site's live price and carbon (0 where unknown)."""
    return replace(
        snap,
        price_cny_per_kwh=reading.price_cny_per_kwh,
        carbon_kg_per_kwh=reading.carbon_kg_per_kwh,
    )

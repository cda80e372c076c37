"""Free accelerator cards per site pool during a replay, with allocation that never overcommits."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from computenet.types import SiteStatus
from computenet.workload import WorkloadJob
from topology import Topology
from topology.pool_fit import Allocation, CardPool, allocation_watts, fit, pools_by_watts


class CapacityError(RuntimeError):
    """An allocation would take more cards than a pool has free (a simulator bug)."""


class Capacity:
    """Total and free cards of every pool, by site id, at a capacity scale.

    Pools of a site are kept in the order of topology.pool_fit (least power-hungry first) and
    jobs take cards by its rule, so every policy, and the demo's accounting, draws the same
    power for the same job at the same site.
    """

    def __init__(self, topology: Topology, scale: float = 1.0) -> None:
        if scale < 0:
            raise ValueError(f"capacity scale must be >= 0 (got {scale})")
        self.topology = topology
        self.pools: dict[str, tuple[CardPool, ...]] = {
            site.id: pools_by_watts(site, scale) for site in topology.sites
        }
        self.free: dict[str, list[int]] = {s: [p.cards for p in ps] for s, ps in self.pools.items()}

    def total_cards(self, side: str | None = None) -> int:
        """Cards offered over all sites (of one side if given)."""
        return sum(
            p.cards
            for site in self.topology.sites
            if side is None or site.side == side
            for p in self.pools[site.id]
        )

    def fit(self, site: str, accelerator: str, cards: int, gang: bool) -> Allocation | None:
        """Where at `site` the cards would go (None if they do not fit now)."""
        return fit(self.pools[site], self.free[site], accelerator, cards, gang)

    def free_cards(self) -> int:
        """Free cards over every pool of the federation."""
        return sum(sum(free) for free in self.free.values())

    def largest_fit(self, accelerator: str, gang: bool) -> int:
        """The most cards any single site could give one job now."""
        best = 0
        for site, pools in self.pools.items():
            free = [
                f
                for f, p in zip(self.free[site], pools, strict=True)
                if not accelerator or p.model == accelerator
            ]
            best = max(best, (max(free, default=0) if gang else sum(free)))
        return best

    def watts(self, site: str, allocation: Allocation) -> float:
        """Board power of the allocated cards."""
        return allocation_watts(self.pools[site], allocation)

    def speed(self, site: str, allocation: Allocation, job: WorkloadJob) -> float:
        """How fast the job runs on these cards relative to its reference model (1: as traced)."""
        return 1.0

    def cards_by_model(self) -> dict[str, int]:
        """Cards offered per accelerator model over the federation."""
        out: dict[str, int] = {}
        for pools in self.pools.values():
            for pool in pools:
                out[pool.model] = out.get(pool.model, 0) + pool.cards
        return out

    def take(self, site: str, allocation: Allocation) -> None:
        """Hold the cards; raises CapacityError rather than overcommit a pool."""
        free = self.free[site]
        for k, n in allocation:
            if n < 0 or free[k] < n:
                raise CapacityError(
                    f"site={site} pool={self.pools[site][k].model} free={free[k]} asked={n}"
                )
        for k, n in allocation:
            free[k] -= n

    def give_back(self, site: str, allocation: Allocation) -> None:
        """Return cards a finished job held."""
        free = self.free[site]
        for k, n in allocation:
            free[k] += n
            if free[k] > self.pools[site][k].cards:
                raise CapacityError(f"site={site} pool={self.pools[site][k].model} over-released")

    def free_by_model(self, site: str) -> Mapping[str, int]:
        """Free cards per accelerator model at a site."""
        out: dict[str, int] = {}
        for pool, n in zip(self.pools[site], self.free[site], strict=True):
            out[pool.model] = out.get(pool.model, 0) + n
        return MappingProxyType(out)

    def snapshot(self, now_unix_s: float) -> FederationSnapshot:
        """The placement engine's view: every site active with its free cards, hosts unbounded."""
        sites: dict[str, SiteCapacity] = {
            site.id: SiteCapacity(
                site_id=site.id,
                status=SiteStatus.ACTIVE,
                free=self.free_by_model(site.id),
                cpu_free=float(site.cpu_cores),
                memory_gb_free=float(site.memory_gb),
            )
            for site in self.topology.sites
        }
        return FederationSnapshot(self.topology, MappingProxyType(sites), now_unix_s)

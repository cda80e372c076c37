"""Free accelerator cards per site pool during a replay, with allocation that never overcommits."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.simulate.load import accepted_models, fits_somewhere
from computenet.types import SiteStatus
from computenet.workload import WorkloadJob
from topology import Topology
from topology.pool_fit import Allocation, CardPool, allocation_watts, pools_by_watts, take


class CapacityError(RuntimeError):
    """An allocation would take more cards than a pool has free (a simulator bug)."""


DEFAULT_WORKLOAD = "generic"


class Capacity:
    """Total and free cards of every pool, by site id, at a capacity scale.

    Pools of a site are kept in the order of topology.pool_fit (least power-hungry first). A
    job takes cards from its acceptable pools in the order of least energy per unit of its work
    (watts over the card's speed for the job, as `view` sees speeds; ties in that order), so
    every policy draws the same power for the same job at the same site. `view` is the topology
    the policies see: the real one, or with `speed_blind` one where every card is equally
    fast. Runs always last as long as the real speeds say (`speed`).
    """

    def __init__(
        self, topology: Topology, scale: float = 1.0, *, speed_blind: bool = False
    ) -> None:
        if scale < 0:
            raise ValueError(f"capacity scale must be >= 0 (got {scale})")
        self.topology = topology
        self.view = topology.with_equal_speeds() if speed_blind else topology
        self.speed_blind = speed_blind
        self.pools: dict[str, tuple[CardPool, ...]] = {
            site.id: pools_by_watts(site, scale) for site in topology.sites
        }
        self.free: dict[str, list[int]] = {s: [p.cards for p in ps] for s, ps in self.pools.items()}
        self.models = frozenset(p.model for ps in self.pools.values() for p in ps)
        self._pool_cards = {
            site: [(p.model, p.cards) for p in ps] for site, ps in self.pools.items()
        }
        self._mean_speeds: dict[tuple[frozenset[str], str, str, bool], float] = {}
        self._orders: dict[tuple[str, frozenset[str], str, str, bool], tuple[int, ...]] = {}

    def total_cards(self, side: str | None = None) -> int:
        """Cards offered over all sites (of one side if given)."""
        return sum(
            p.cards
            for site in self.topology.sites
            if side is None or site.side == side
            for p in self.pools[site.id]
        )

    def accepted(self, job: WorkloadJob) -> frozenset[str]:
        """The models the job may run on, among the federation's."""
        return accepted_models(job, self.models)

    def job_speed(self, model: str, job: WorkloadJob, topology: Topology | None = None) -> float:
        """How fast `job` runs on `model` against its reference (1 without one, and for
        inference, whose duration is a serving window rather than an amount of work)."""
        if not job.reference or job.kind == "inference" or model == job.reference:
            return 1.0
        return (topology or self.topology).speed(
            model, job.reference, job.workload or DEFAULT_WORKLOAD
        )

    def mean_speed(self, job: WorkloadJob) -> float:
        """The job's real speed averaged over the cards of the models it accepts."""
        key = (self.accepted(job), job.reference, job.workload, job.kind == "inference")
        cached = self._mean_speeds.get(key)
        if cached is None:
            cards = self.cards_by_model()
            total = sum(cards.get(m, 0) for m in key[0])
            work = sum(cards.get(m, 0) * self.job_speed(m, job) for m in key[0])
            cached = self._mean_speeds[key] = work / total if total > 0 else 1.0
        return cached

    def order(self, site: str, job: WorkloadJob, model: str = "") -> tuple[int, ...]:
        """The site's pools the job may take (of `model` only if given), in the order it
        takes them: least board watts per unit of its work as the policies see speeds."""
        models = frozenset({model}) if model else self.accepted(job)
        key = (site, models, job.reference, job.workload, job.kind == "inference")
        cached = self._orders.get(key)
        if cached is None:
            pools = self.pools[site]
            usable = [k for k, p in enumerate(pools) if p.model in models]
            usable.sort(
                key=lambda k: (pools[k].watts / self.job_speed(pools[k].model, job, self.view), k)
            )
            cached = self._orders[key] = tuple(usable)
        return cached

    def fit(self, site: str, job: WorkloadJob, model: str = "") -> Allocation | None:
        """Where at `site` the job's cards would go now (None if they do not fit).

        A gang takes the first pool in `order` with room for all its cards; inference replicas
        fill pools in that order.
        """
        return take(self.free[site], self.order(site, job, model), job.count, job.gang)

    def speed(self, site: str, allocation: Allocation, job: WorkloadJob) -> float:
        """The real speed of the job on its cards (the slowest pool's, if it spans several)."""
        pools = self.pools[site]
        return min((self.job_speed(pools[k].model, job) for k, _ in allocation), default=1.0)

    def view_speed(self, site: str, allocation: Allocation, job: WorkloadJob) -> float:
        """The speed the policies believe the job runs at on these cards (1 when speed-blind)."""
        pools = self.pools[site]
        speeds = (self.job_speed(pools[k].model, job, self.view) for k, _ in allocation)
        return min(speeds, default=1.0)

    def free_cards(self) -> int:
        """Free cards over every pool of the federation."""
        return sum(sum(free) for free in self.free.values())

    def largest_fit(self, job: WorkloadJob) -> int:
        """The most cards any single site could give the job now."""
        models = self.accepted(job)
        best = 0
        for site, pools in self.pools.items():
            free = [f for f, p in zip(self.free[site], pools, strict=True) if p.model in models]
            best = max(best, (max(free, default=0) if job.gang else sum(free)))
        return best

    def never_fits(self, job: WorkloadJob) -> bool:
        """True if no site could ever give the job its cards, even with everything free."""
        return not fits_somewhere(job, self._pool_cards, self.models)

    def watts(self, site: str, allocation: Allocation) -> float:
        """Board power of the allocated cards."""
        return allocation_watts(self.pools[site], allocation)

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
        """The placement engine's view (`view`): every site active with its free cards, hosts
        unbounded."""
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
        return FederationSnapshot(self.view, MappingProxyType(sites), now_unix_s)

"""Hand-rule policies: nearest site with room, cheapest energy with room, a seeded random site."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from broker.simulate.capacity import Allocation, Capacity
from broker.simulate.clock import hours_since_day0
from broker.simulate.metrics import workload_class
from broker.simulate.policy_base import BatchStats, Blocked, Start
from computenet.workload import WorkloadJob
from topology import Topology
from topology.energy import run_energy


def anchor(job: WorkloadJob) -> str:
    """The node a job wants to be near: its users (inference) or its data origin."""
    return job.user_region if job.kind == "inference" else job.origin


class OneAtATime:
    """Walks the queue in order; each job starts where its rule picks among sites with room."""

    def __init__(self, name: str, topology: Topology) -> None:
        self.name = name
        self.topology = topology

    def choose(
        self, job: WorkloadJob, fits: list[tuple[str, Allocation]], now_s: float
    ) -> tuple[str, Allocation]:
        """Pick one of the sites with room (listed in topology order)."""
        raise NotImplementedError

    def decide(self, queue: Sequence[WorkloadJob], capacity: Capacity, now_s: float) -> list[Start]:
        starts: list[Start] = []
        blocked = Blocked()
        for job in queue:
            if blocked.skip(job):
                continue
            began = time.perf_counter()
            fits: list[tuple[str, Allocation]] = []
            for site in self.topology.site_ids:
                allocation = capacity.fit(site, job)
                if allocation is not None:
                    fits.append((site, allocation))
            if not fits:
                blocked.fail(job)
                continue
            chosen, allocation = self.choose(job, fits, now_s)
            capacity.take(chosen, allocation)
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            starts.append(Start(job, chosen, allocation, elapsed_ms))
        return starts

    def batch_stats(self) -> BatchStats | None:
        return None


class Nearest(OneAtATime):
    """The site nearest by RTT to the job's users or data (the data's own site first)."""

    def __init__(self, topology: Topology) -> None:
        super().__init__("nearest", topology)
        self._rank: dict[str, dict[str, int]] = {}

    def _ranking(self, node: str) -> dict[str, int]:
        rank = self._rank.get(node)
        if rank is None:
            order: list[str] = [s for s, _ in self.topology.nearest_sites(node)] if node else []
            if node in self.topology.site_ids:
                order.insert(0, node)
            rank = {site: k for k, site in enumerate(order)}
            self._rank[node] = rank
        return rank

    def choose(
        self, job: WorkloadJob, fits: list[tuple[str, Allocation]], now_s: float
    ) -> tuple[str, Allocation]:
        rank = self._ranking(anchor(job))
        return min(fits, key=lambda fit: rank.get(fit[0], len(rank)))


class CheapestEnergy(OneAtATime):
    """The site where the job's electricity over its run window costs least; latency ignored."""

    def __init__(self, topology: Topology, capacity: Capacity) -> None:
        super().__init__("cheapest-energy", topology)
        self._capacity = capacity

    def choose(
        self, job: WorkloadJob, fits: list[tuple[str, Allocation]], now_s: float
    ) -> tuple[str, Allocation]:
        start_h = hours_since_day0(now_s)

        def cost(fit: tuple[str, Allocation]) -> float:
            site, allocation = fit
            watts = self._capacity.watts(site, allocation)
            hours = job.duration_h / self._capacity.view_speed(site, allocation, job)
            return run_energy(
                self.topology, site, watts, start_h, hours,
                cards=job.count, workload=workload_class(job),
            ).cny  # fmt: skip

        return min(fits, key=cost)


class RandomSite(OneAtATime):
    """A uniformly random site among those with room, from a seeded generator."""

    def __init__(self, topology: Topology, seed: int) -> None:
        super().__init__("random", topology)
        self._rng = random.Random(seed)

    def choose(
        self, job: WorkloadJob, fits: list[tuple[str, Allocation]], now_s: float
    ) -> tuple[str, Allocation]:
        return fits[self._rng.randrange(len(fits))]

"""Seeded, order-independent assignment of user regions and data origins to unlocated jobs."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Sequence
from itertools import accumulate

from computenet.workload import WorkloadJob
from topology import Topology


class RegionDraw:
    """Draws a user region by the topology's demand weights from a (seed, key) pair.

    The draw hashes the seed and the key, so a job gets the same region whatever the order,
    limit or mix of the workloads it is replayed with.
    """

    def __init__(self, topology: Topology, seed: int) -> None:
        regions = [r for r in topology.regions if r.demand_weight > 0]
        if not regions:
            raise ValueError("the topology has no user region with a positive demand weight")
        total = sum(r.demand_weight for r in regions)
        self.region_ids = tuple(r.id for r in regions)
        self.cumulative = tuple(w / total for w in accumulate(r.demand_weight for r in regions))
        self.seed = seed
        self.topology = topology

    def uniform(self, key: str) -> float:
        """A number in [0, 1) fixed by the seed and the key."""
        digest = hashlib.blake2b(f"{self.seed}/{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def region(self, key: str) -> str:
        """The user region drawn for `key`."""
        k = bisect.bisect_right(self.cumulative, self.uniform(key))
        return self.region_ids[min(k, len(self.region_ids) - 1)]

    def data_site(self, region: str) -> str:
        """Where a region's users keep their data: the site nearest to it by RTT."""
        nearest = self.topology.nearest_sites(region, 1)
        if not nearest:
            raise ValueError(f"user region {region!r} reaches no site")
        return nearest[0][0]


def assign_locations(
    jobs: Sequence[WorkloadJob], topology: Topology, seed: int
) -> list[WorkloadJob]:
    """Fill empty user regions (inference) and data origins (training, batch) by seeded draws.

    Inference users come from the drawn region. Training and batch data live at the site
    nearest to the drawn region. Values already present are kept as they are.
    """
    draw = RegionDraw(topology, seed)
    out: list[WorkloadJob] = []
    for job in jobs:
        region, origin = job.user_region, job.origin
        if job.kind == "inference":
            region = region or draw.region(job.job_id)
            origin = origin or region
        elif not origin:
            origin = draw.data_site(draw.region(job.job_id))
        changed = (region, origin) != (job.user_region, job.origin)
        out.append(dataclasses.replace(job, user_region=region, origin=origin) if changed else job)
    return out

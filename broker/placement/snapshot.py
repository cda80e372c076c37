"""Point-in-time view of the federation that placement decides against: topology and capacity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from computenet.types import SiteStatus
from topology import Topology

SECONDS_PER_HOUR = 3600.0
CST_OFFSET_HOURS = 8.0
HOURS_PER_DAY = 24.0


@dataclass(frozen=True, slots=True)
class SiteCapacity:
    """What one site can take right now, as its agent last reported it.

    `free` maps accelerator model to cards that can be given to new work now; a model the site
    does not report has no free cards. A pool whose node shape is known (`cards_per_node` names
    it) also counts its whole nodes surely free (`whole_nodes`): a job there that outgrows one
    node needs them (broker/placement/shapes.py). `queue_wait_h` is the expected wait before a
    job starts; `queue_wait_h_by_pool`, where it names a pool, overrides it for that pool.
    """

    site_id: str
    status: SiteStatus
    free: Mapping[str, int] = field(default_factory=dict)
    cpu_free: float = 0.0
    memory_gb_free: float = 0.0
    queue_wait_h: float = 0.0
    queue_wait_h_by_pool: Mapping[str, float] = field(default_factory=dict)
    capacity_stale: bool = False
    """The site is alive but its capacity probe has failed for too long: it takes no new work."""
    cards_per_node: Mapping[str, int] = field(default_factory=dict)
    """Cards on each node of the pools whose node shape is known; others are one bin of cards."""
    nodes: Mapping[str, int] = field(default_factory=dict)
    """Nodes of the pools whose node shape is known (in service or not)."""
    whole_nodes: Mapping[str, int] = field(default_factory=dict)
    """Per shaped pool, nodes in service less those its work takes or may spoil (the node
    balance, broker/placement/shapes.py): max(0, balance) nodes are surely wholly free. It may
    be below zero, so that releasing a job gives back exactly what it took. A shaped pool
    missing here is taken as min(nodes, free // cards_per_node), true of a pool with no work."""

    def node_balance(self, model: str) -> int:
        """The node balance of the pool of `model` (see `whole_nodes`); 0 if of unknown shape."""
        per_node = self.cards_per_node.get(model, 0)
        if per_node <= 0 or self.nodes.get(model, 0) <= 0:
            return 0
        balance = self.whole_nodes.get(model)
        if balance is None:
            return min(self.nodes[model], max(0, self.free.get(model, 0)) // per_node)
        return balance


@dataclass(frozen=True, slots=True)
class ReportedEnergy:
    """A site's own live power price and grid carbon factor, as its agent last reported them.

    0 means the site did not report that figure (the topology's is used). Only reports within
    the broker's capacity staleness limit make it into a snapshot.
    """

    price_cny_per_kwh: float = 0.0
    carbon_kg_per_kwh: float = 0.0
    reported_unix_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FederationSnapshot:
    """The topology, every site's capacity and the moment the snapshot describes.

    Sites of the topology missing from `sites` have not reported and take no work. Sites in
    `reported_energy` price energy and carbon with their own live figures
    (broker/placement/live_prices.py); the others with the topology's.
    """

    topology: Topology
    sites: Mapping[str, SiteCapacity]
    now_unix_s: float
    reported_energy: Mapping[str, ReportedEnergy] = field(default_factory=dict)

    @property
    def hour_of_day_cst(self) -> float:
        """Fractional hour of the day in China Standard Time (UTC+8, no daylight saving)."""
        return (self.now_unix_s / SECONDS_PER_HOUR + CST_OFFSET_HOURS) % HOURS_PER_DAY

    @classmethod
    def all_free(cls, topology: Topology, now_unix_s: float) -> FederationSnapshot:
        """Every site active with all its declared pools, cores and memory free (offline use)."""
        sites: dict[str, SiteCapacity] = {
            site.id: SiteCapacity(
                site_id=site.id,
                status=SiteStatus.ACTIVE,
                free=MappingProxyType({pool.model: pool.count for pool in site.pools}),
                cpu_free=float(site.cpu_cores),
                memory_gb_free=float(site.memory_gb),
            )
            for site in topology.sites
        }
        return cls(topology=topology, sites=MappingProxyType(sites), now_unix_s=now_unix_s)

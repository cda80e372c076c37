"""Builders of jobs and snapshots on the built-in topology for the rebalancing tests."""

from __future__ import annotations

from types import MappingProxyType

from broker.placement import FederationSnapshot, PolicyConfig, SiteCapacity
from computenet.spec import WORKLOADS, JobSpec
from computenet.types import SiteStatus
from topology import Topology, default_topology

SECONDS_PER_HOUR = 3600
# a Unix time at 00:00 China Standard Time (UTC+8)
CST_MIDNIGHT_UNIX_S = 1_699_977_600
# Cards at full board power and no host share per card: the planner's arithmetic is checked
# against board watts x cards + cores x 3 W, a model the tests can restate in one line.
POLICY = PolicyConfig(
    carbon_price_cny_per_t=100.0,
    accelerator_hour_value_cny=10.0,
    cpu_watts_per_core=3.0,
    host_watts_per_card=0.0,
    card_utilisation=dict.fromkeys(WORKLOADS, 1.0),
)


def at_cst(hour: float) -> float:
    """Unix seconds at `hour` CST of the reference day."""
    return CST_MIDNIGHT_UNIX_S + hour * SECONDS_PER_HOUR


def training(
    duration_h: float,
    *,
    accelerator: str = "a800",
    cards: int = 256,
    checkpoint_gb: float | None = 200.0,
    priority: int = 0,
) -> JobSpec:
    """A gang training job; checkpointable unless `checkpoint_gb` is None."""
    checkpoint = (
        None if checkpoint_gb is None else {"interval_hours": 1.0, "size_gb": checkpoint_gb}
    )
    return JobSpec.model_validate(
        {
            "name": "train",
            "kind": "training",
            "resources": {
                "accelerator": accelerator,
                "count": cards,
                "cpu_cores": cards * 8,
                "memory_gb": cards * 64,
            },
            "duration_hours": duration_h,
            "checkpoint": checkpoint,
            "priority": priority,
            "command": ["train"],
        }
    )


def inference(regions: dict[str, float], slo_ms: float = 30.0, cards: int = 8) -> JobSpec:
    """An inference service on h20 cards for its user regions."""
    return JobSpec.model_validate(
        {
            "name": "serve",
            "kind": "inference",
            "resources": {"accelerator": "h20", "count": cards, "cpu_cores": 16, "memory_gb": 128},
            "duration_hours": 2000,
            "inference": {
                "user_regions": [{"region": r, "weight": w} for r, w in regions.items()],
                "latency_slo_ms": slo_ms,
                "replicas": 1,
            },
            "command": ["serve"],
        }
    )


def snapshot(
    now_unix_s: float,
    *,
    topology: Topology | None = None,
    fraction_free: float = 1.0,
    free: dict[str, dict[str, int]] | None = None,
    status: dict[str, SiteStatus] | None = None,
) -> FederationSnapshot:
    """Every site reporting `fraction_free` of its pools (or exactly `free`), active unless told."""
    topology = topology or default_topology()
    sites: dict[str, SiteCapacity] = {}
    for site in topology.sites:
        pools = (free or {}).get(site.id)
        if pools is None:
            pools = {p.model: int(p.count * fraction_free) for p in site.pools}
        sites[site.id] = SiteCapacity(
            site_id=site.id,
            status=(status or {}).get(site.id, SiteStatus.ACTIVE),
            free=MappingProxyType(dict(pools)),
            cpu_free=site.cpu_cores * fraction_free,
            memory_gb_free=site.memory_gb * fraction_free,
        )
    return FederationSnapshot(topology, MappingProxyType(sites), now_unix_s)

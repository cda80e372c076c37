"""Pure placement core: where a job should run and why, for one job or the whole pending queue."""

from broker.placement.batch import BatchResult, place_batch, place_greedy
from broker.placement.budget import SolveBudget
from broker.placement.config import PolicyConfig
from broker.placement.demand import JobDemand
from broker.placement.engine import place
from broker.placement.filters import (
    Filter,
    RequireAccelerator,
    RequireDataReachable,
    RequireGangFit,
    RequireHostResources,
    RequireResidency,
    RequireSiteAccepting,
    RespectLatencySLO,
)
from broker.placement.headroom import ExpectedDemand, ScaledDemand, ServingDemand
from broker.placement.policy import Policy
from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from broker.placement.terms import (
    CarbonCost,
    CostTerm,
    DataMovementCost,
    EnergyCost,
    LatencyCost,
    QueueWaitCost,
    ReliabilityCost,
)

__all__ = [
    "BatchResult",
    "CarbonCost",
    "CostTerm",
    "DataMovementCost",
    "EnergyCost",
    "ExpectedDemand",
    "FederationSnapshot",
    "Filter",
    "JobDemand",
    "LatencyCost",
    "Policy",
    "PolicyConfig",
    "QueueWaitCost",
    "ReliabilityCost",
    "RequireAccelerator",
    "RequireDataReachable",
    "RequireGangFit",
    "RequireHostResources",
    "RequireResidency",
    "RequireSiteAccepting",
    "RespectLatencySLO",
    "ScaledDemand",
    "ServingDemand",
    "SiteCapacity",
    "SolveBudget",
    "place",
    "place_batch",
    "place_greedy",
]

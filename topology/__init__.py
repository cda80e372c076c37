"""The federation as a graph: sites, user regions and links with precomputed lookups."""

from topology.accelerators import (
    WORKLOADS,
    AcceleratorModel,
    Catalogue,
    UnknownAcceleratorError,
    Workload,
)
from topology.errors import NoRouteError, TopologyError, TopologyIssue, UnknownNodeError
from topology.graph import Topology
from topology.loader import default_topology, load_topology, parse_topology
from topology.model import AcceleratorPool, Link, RegionId, Side, Site, SiteId, SiteKind, UserRegion
from topology.pricing import CST, hour_of_day_cst
from topology.synthetic import synthetic_topology

__all__ = [
    "CST",
    "WORKLOADS",
    "AcceleratorModel",
    "AcceleratorPool",
    "Catalogue",
    "Link",
    "NoRouteError",
    "RegionId",
    "Side",
    "Site",
    "SiteId",
    "SiteKind",
    "Topology",
    "TopologyError",
    "TopologyIssue",
    "UnknownAcceleratorError",
    "UnknownNodeError",
    "UserRegion",
    "Workload",
    "default_topology",
    "hour_of_day_cst",
    "load_topology",
    "parse_topology",
    "synthetic_topology",
]

"""Array views of a topology and a snapshot, indexed by placement option, built once and reused.

An option is one way to run a job at a site: one accelerator pool, or the site's host cores
alone (a pseudo option with model "" used by CPU-only jobs). Filters and cost terms work on
arrays of option indices, so one decision over ten sites and a batch over a thousand sites
run the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from broker.placement.snapshot import FederationSnapshot, SiteCapacity
from computenet.types import SiteStatus
from topology import Topology

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

HOST_ONLY = ""  # model of the pseudo option that runs on host cores alone
_CACHE_SIZE = 8
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DataRoute:
    """Widest-path bandwidth and per-GB price from one dataset origin to every site."""

    bottleneck_gbps: FloatArray
    cny_per_gb: FloatArray


@dataclass(eq=False, slots=True)
class FederationTable:
    """Static per-topology arrays: site facts, price prefix sums and RTTs, gathered per option."""

    topology: Topology
    site_ids: tuple[str, ...]
    provinces: tuple[str, ...]
    region_pos: dict[str, int]
    opt_site: IntArray
    opt_model: tuple[str, ...]
    opt_watts: FloatArray
    opt_memory_gb: FloatArray  # device memory per card, 0 for host-only options
    opt_pue: FloatArray
    opt_carbon_kg_per_kwh: FloatArray
    opt_mtbf_h: FloatArray
    opt_hourly: FloatArray  # options x 24, CNY/kWh
    opt_prefix: FloatArray  # options x 25, integral of the price from hour 0
    opt_rtt_ms: FloatArray  # regions x options
    site_options: tuple[IntArray, ...]
    model_mask: dict[str, BoolArray]
    _routes: dict[str, DataRoute | None] = field(default_factory=dict)
    _speeds: dict[tuple[str, str], FloatArray] = field(default_factory=dict)

    @property
    def n_options(self) -> int:
        """Number of options (pools plus one host-only option per site)."""
        return len(self.opt_model)

    def data_route(self, origin: str) -> DataRoute | None:
        """Route facts from a dataset origin (site or region) to every site; None if unknown."""
        if origin in self._routes:
            return self._routes[origin]
        topo = self.topology
        route = None
        if topo.has_node(origin):
            bottleneck = np.array([topo.bottleneck_gbps(origin, s) for s in self.site_ids])
            per_gb = np.array(
                [
                    topo.transfer_cost_cny(origin, s, 1.0) if b > 0 else math.inf
                    for s, b in zip(self.site_ids, bottleneck, strict=True)
                ]
            )
            route = DataRoute(bottleneck, per_gb)
        self._routes[origin] = route
        return route

    def speeds(self, reference: str, workload: str) -> FloatArray:
        """Each option's speed over `reference` for `workload` (1 for host-only options).

        An empty or uncatalogued reference gives 1 everywhere: durations are then taken as
        they are on every model.
        """
        key = (reference, workload)
        hit = self._speeds.get(key)
        if hit is None:
            catalogue = self.topology.accelerators
            known = reference in catalogue
            hit = np.asarray(
                [
                    self.topology.speed(m, reference, workload) if known and m in catalogue else 1.0
                    for m in self.opt_model
                ],
                dtype=np.float64,
            )
            self._speeds[key] = hit
        return hit

    @classmethod
    def build(cls, topology: Topology) -> FederationTable:
        """Gather the topology's facts into option-indexed arrays."""
        sites = topology.sites
        opt_site: list[int] = []
        opt_model: list[str] = []
        opt_watts: list[float] = []
        opt_memory_gb: list[float] = []
        for i, site in enumerate(sites):
            opt_site.append(i)
            opt_model.append(HOST_ONLY)
            opt_watts.append(0.0)
            opt_memory_gb.append(0.0)
            for pool in site.pools:
                opt_site.append(i)
                opt_model.append(pool.model)
                opt_watts.append(pool.watts)
                opt_memory_gb.append(pool.memory_gb)
        at = np.asarray(opt_site, dtype=np.int64)
        hourly = np.asarray([s.hourly_price_cny_per_kwh for s in sites], dtype=np.float64)
        prefix = np.concatenate([np.zeros((len(sites), 1)), np.cumsum(hourly, axis=1)], axis=1)
        regions = topology.region_ids
        rtt = np.array([[topology.rtt_ms(r, s.id) for s in sites] for r in regions])
        models = tuple(opt_model)
        by_model: dict[str, list[int]] = {}
        for k, model in enumerate(models):
            by_model.setdefault(model, []).append(k)
        table = cls(
            topology=topology,
            site_ids=tuple(s.id for s in sites),
            provinces=tuple(s.province for s in sites),
            region_pos={r: k for k, r in enumerate(regions)},
            opt_site=at,
            opt_model=models,
            opt_watts=np.asarray(opt_watts, dtype=np.float64),
            opt_memory_gb=np.asarray(opt_memory_gb, dtype=np.float64),
            opt_pue=np.asarray([s.pue for s in sites], dtype=np.float64)[at],
            opt_carbon_kg_per_kwh=np.asarray(
                [s.effective_carbon_kg_per_kwh for s in sites], dtype=np.float64
            )[at],
            opt_mtbf_h=np.asarray([s.mtbf_hours for s in sites], dtype=np.float64)[at],
            opt_hourly=hourly[at],
            opt_prefix=prefix[at],
            opt_rtt_ms=rtt.reshape(len(regions), len(sites))[:, at],
            site_options=tuple(np.flatnonzero(at == i) for i in range(len(sites))),
            model_mask={m: np.isin(np.arange(len(models)), ks) for m, ks in by_model.items()},
        )
        for region in regions:  # datasets usually come from user regions; sites are looked up
            table.data_route(region)
        return table


@dataclass(eq=False, slots=True)
class Availability:
    """Per-snapshot arrays: which sites accept work and what is free there, per option.

    `opt_free` is the free cards of each option. For a pool of known node shape,
    `opt_cards_per_node` and `opt_nodes` give that shape and `opt_whole_nodes` its node balance
    (max(0, balance) whole nodes are surely free; broker/placement/shapes.py); all three are 0
    where the shape is unknown, and for host-only options.
    """

    snapshot: FederationSnapshot
    site_status: tuple[str, ...]
    opt_accepting: BoolArray
    opt_free: IntArray
    site_cpu_free: FloatArray
    site_memory_gb_free: FloatArray
    opt_wait_h: FloatArray
    opt_cards_per_node: IntArray
    opt_nodes: IntArray
    opt_whole_nodes: IntArray

    @classmethod
    def build(cls, table: FederationTable, snapshot: FederationSnapshot) -> Availability:
        """Read the snapshot's capacity reports into option-indexed arrays."""
        reports = [snapshot.sites.get(site_id) for site_id in table.site_ids]
        status = tuple(_status_text(r) for r in reports)
        accepting = np.asarray(
            [
                r is not None and r.status == SiteStatus.ACTIVE and not r.capacity_stale
                for r in reports
            ]
        )
        free_by_site = [{} if r is None else r.free for r in reports]
        pairs = list(zip(table.opt_site.tolist(), table.opt_model, strict=True))
        free = np.asarray([int(free_by_site[s].get(m, 0)) for s, m in pairs], dtype=np.int64)
        cards_per_node, nodes, whole = _node_shapes(reports, pairs)
        return cls(
            snapshot=snapshot,
            site_status=status,
            opt_accepting=accepting[table.opt_site],
            opt_free=np.maximum(free, 0),
            site_cpu_free=np.asarray([r.cpu_free if r else 0.0 for r in reports], dtype=np.float64),
            site_memory_gb_free=np.asarray(
                [r.memory_gb_free if r else 0.0 for r in reports], dtype=np.float64
            ),
            opt_wait_h=np.asarray(
                [
                    _wait_h(reports[s], m)
                    for s, m in zip(table.opt_site.tolist(), table.opt_model, strict=True)
                ],
                dtype=np.float64,
            ),
            opt_cards_per_node=cards_per_node,
            opt_nodes=nodes,
            opt_whole_nodes=whole,
        )


def _node_shapes(
    reports: list[SiteCapacity | None], pairs: list[tuple[int, str]]
) -> tuple[IntArray, IntArray, IntArray]:
    """Cards per node, nodes and node balance per option; 0 where the shape is (half) unknown."""
    zeros = np.zeros(len(pairs), dtype=np.int64)
    if not any(r is not None and r.cards_per_node for r in reports):
        return zeros, zeros.copy(), zeros.copy()
    empty: dict[str, int] = {}
    per_node = [r.cards_per_node if r is not None else empty for r in reports]
    counts = [r.nodes if r is not None else empty for r in reports]
    cards_per_node = np.asarray(
        [max(0, int(per_node[s].get(m, 0))) if m else 0 for s, m in pairs], dtype=np.int64
    )
    nodes = np.asarray([max(0, int(counts[s].get(m, 0))) if m else 0 for s, m in pairs])
    known = (cards_per_node > 0) & (nodes > 0)
    balance = np.asarray(
        [
            _node_balance(reports[s], m) if ok else 0
            for (s, m), ok in zip(pairs, known.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    return (
        np.where(known, cards_per_node, 0),
        np.where(known, nodes, 0).astype(np.int64),
        balance,
    )


def _node_balance(report: SiteCapacity | None, model: str) -> int:
    return 0 if report is None else report.node_balance(model)


def _wait_h(report: SiteCapacity | None, model: str) -> float:
    """The expected queue wait of one option: its pool's estimate, else the site's."""
    if report is None:
        return 0.0
    return report.queue_wait_h_by_pool.get(model, report.queue_wait_h)


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What filters and terms evaluate a job against.

    `single_pool` makes every job fit inside one pool, as batch placement accounts capacity
    per pool; single decisions let non-gang jobs count all acceptable pools of a site.
    """

    table: FederationTable
    avail: Availability
    start_hour: float
    single_pool: bool = False


_tables: dict[int, tuple[Topology, FederationTable]] = {}
_availability: dict[int, tuple[FederationSnapshot, Availability]] = {}


def context_for(snapshot: FederationSnapshot, *, single_pool: bool = False) -> EvalContext:
    """The evaluation context of a snapshot, reusing arrays built for the same objects before."""
    topology = snapshot.topology
    hit = _tables.get(id(topology))
    if hit is None or hit[0] is not topology:
        hit = (topology, FederationTable.build(topology))
        _remember(_tables, id(topology), hit)
    table = hit[1]
    seen = _availability.get(id(snapshot))
    if seen is None or seen[0] is not snapshot or seen[1].snapshot.topology is not topology:
        seen = (snapshot, Availability.build(table, snapshot))
        _remember(_availability, id(snapshot), seen)
    return EvalContext(table, seen[1], snapshot.hour_of_day_cst, single_pool)


def _remember(cache: dict[int, _T], key: int, value: _T) -> None:
    # strong references keep ids from being reused while cached; the caches stay small
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _status_text(report: SiteCapacity | None) -> str:
    if report is None:
        return "not reporting"
    if report.capacity_stale:
        return f"{report.status} with stale capacity (probe failing)"
    return str(report.status)

"""The Topology snapshot: the federation as a frozen graph with route, price and carbon tables."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import networkx as nx
import numpy as np

from located_yaml import field_path
from topology.accelerators import AcceleratorModel, Catalogue, catalogue_from_pools
from topology.checks import consistency_problems
from topology.errors import NoRouteError, TopologyError, TopologyIssue, UnknownNodeError
from topology.model import Link, RegionId, Site, SiteId, UserRegion
from topology.pricing import PriceSchedule
from topology.routing import LinkArrays, RoutePlanner, RouteRows, walk_back


class Topology:
    """An immutable snapshot of sites, user regions and links with O(1) route and price lookups.

    Node indices put sites first, so route tables are only built from sites (sites x all nodes);
    a query between two user regions computes that region's row on first use and keeps it.
    Unreachable pairs have `rtt_ms` inf and `bottleneck_gbps` 0; `path` raises NoRouteError.
    """

    __slots__ = (
        "_catalogue",
        "_graph",
        "_index",
        "_links",
        "_nearest",
        "_node_ids",
        "_planner",
        "_prices",
        "_region_by_id",
        "_region_rows",
        "_regions",
        "_rows",
        "_site_by_id",
        "_sites",
    )

    def __init__(
        self,
        sites: Iterable[Site],
        regions: Iterable[UserRegion] = (),
        links: Iterable[Link] = (),
        *,
        accelerators: Catalogue | None = None,
    ) -> None:
        self._sites = tuple(sites)
        self._regions = tuple(regions)
        self._links = tuple(links)
        problems = consistency_problems(self._sites, self._regions, self._links)
        if problems:
            raise TopologyError(
                [TopologyIssue(None, None, field_path(p.loc), p.message) for p in problems]
            )
        self._site_by_id: Mapping[str, Site] = MappingProxyType({s.id: s for s in self._sites})
        self._region_by_id: Mapping[str, UserRegion] = MappingProxyType(
            {r.id: r for r in self._regions}
        )
        self._node_ids: tuple[str, ...] = (*self._site_by_id, *self._region_by_id)
        self._index: dict[str, int] = {node: i for i, node in enumerate(self._node_ids)}
        self._planner = RoutePlanner(self._link_arrays())
        self._rows: RouteRows = self._planner.rows(np.arange(len(self._sites), dtype=np.int64))
        self._region_rows: dict[int, RouteRows] = {}
        self._nearest: dict[int, tuple[tuple[SiteId, float], ...]] = {}
        self._prices: dict[str, PriceSchedule] = {
            s.id: PriceSchedule(s.hourly_price_cny_per_kwh) for s in self._sites
        }
        self._graph = self._build_graph()
        # models only pools name (synthetic topologies) join with TFLOPS-ratio throughput
        self._catalogue = catalogue_from_pools(
            self._sites,
            accelerators.models.values() if accelerators else (),
            accelerators.reference if accelerators else None,
        )
        if accelerators is not None and accelerators.speed_blind:
            self._catalogue = self._catalogue.equal_speeds()

    # -- accessors -------------------------------------------------------------------------------

    @property
    def sites(self) -> tuple[Site, ...]:
        """Sites in definition order."""
        return self._sites

    @property
    def regions(self) -> tuple[UserRegion, ...]:
        """User regions in definition order."""
        return self._regions

    @property
    def links(self) -> tuple[Link, ...]:
        """Links in definition order."""
        return self._links

    @property
    def site_ids(self) -> tuple[SiteId, ...]:
        """Site ids in definition order."""
        return tuple(s.id for s in self._sites)

    @property
    def region_ids(self) -> tuple[RegionId, ...]:
        """User-region ids in definition order."""
        return tuple(r.id for r in self._regions)

    @property
    def east_sites(self) -> tuple[Site, ...]:
        """Sites on the eastern (demand) side."""
        return tuple(s for s in self._sites if s.side == "east")

    @property
    def west_sites(self) -> tuple[Site, ...]:
        """Sites on the western (energy) side."""
        return tuple(s for s in self._sites if s.side == "west")

    @property
    def graph(self) -> nx.Graph:
        """Frozen networkx graph; nodes carry `kind` and `record`, edges carry the link fields."""
        return self._graph

    def site(self, site_id: str) -> Site:
        """The site with that id; UnknownNodeError otherwise."""
        try:
            return self._site_by_id[site_id]
        except KeyError:
            raise UnknownNodeError(site_id, "site") from None

    def region(self, region_id: str) -> UserRegion:
        """The user region with that id; UnknownNodeError otherwise."""
        try:
            return self._region_by_id[region_id]
        except KeyError:
            raise UnknownNodeError(region_id, "user region") from None

    def has_node(self, node_id: str) -> bool:
        """True if the id names a site or a user region."""
        return node_id in self._index

    # -- routes ----------------------------------------------------------------------------------

    def rtt_ms(self, a: str, b: str) -> float:
        """Round-trip time of the min-RTT path between two nodes (inf if unreachable)."""
        rows, row, col, _ = self._locate(a, b)
        return float(rows.rtt_ms[row, col])

    def path(self, a: str, b: str) -> list[str]:
        """Node ids along the min-RTT path from `a` to `b`, both included."""
        rows, row, col, flipped = self._locate(a, b)
        return self._walk(rows.rtt_pred[row], a, b, col, flipped)

    def bottleneck_gbps(self, a: str, b: str) -> float:
        """Widest-path bandwidth between two nodes (inf from a node to itself, 0 if unreachable)."""
        rows, row, col, _ = self._locate(a, b)
        return float(rows.bottleneck_gbps[row, col])

    def transfer_path(self, a: str, b: str) -> list[str]:
        """Node ids along the widest path, the route bulk transfers take."""
        rows, row, col, flipped = self._locate(a, b)
        return self._walk(rows.tree_pred[row], a, b, col, flipped)

    def transfer_hours(self, a: str, b: str, size_gb: float) -> float:
        """Hours to move `size_gb` over the widest path: size_gb*8/bottleneck/3600 (RTT ignored)."""
        if size_gb < 0:
            raise ValueError(f"size_gb must be >= 0 (got {size_gb})")
        bottleneck = self.bottleneck_gbps(a, b)
        if size_gb == 0 or math.isinf(bottleneck):
            return 0.0
        return math.inf if bottleneck == 0 else size_gb * 8.0 / bottleneck / 3600.0

    def transfer_cost_cny(self, a: str, b: str, size_gb: float) -> float:
        """CNY to move `size_gb` along the widest path (sum of the links' cny_per_gb)."""
        if size_gb < 0:
            raise ValueError(f"size_gb must be >= 0 (got {size_gb})")
        rows, row, col, _ = self._locate(a, b)
        per_gb = float(rows.transfer_cny_per_gb[row, col])
        return 0.0 if size_gb == 0 else size_gb * per_gb

    def weighted_rtt_ms(self, site: str, weights: Mapping[str, float]) -> float:
        """Demand-weighted mean RTT from the nodes in `weights` (usually user regions) to `site`."""
        self.site(site)
        total = math.fsum(weights.values())
        if not weights or total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("weights must be non-negative with a positive sum")
        return math.fsum(w * self.rtt_ms(node, site) for node, w in weights.items()) / total

    def nearest_sites(self, node: str, k: int | None = None) -> list[tuple[SiteId, float]]:
        """Up to `k` reachable sites nearest to `node` by RTT, itself excluded, nearest first."""
        col = self._node_index(node)
        ranked = self._nearest.get(col)
        if ranked is None:
            column = self._rtt_to_sites(col)
            order = np.argsort(column, kind="stable")
            ranked = tuple(
                (self._sites[i].id, float(column[i]))
                for i in order.tolist()
                if i != col and math.isfinite(column[i])
            )
            self._nearest[col] = ranked
        return list(ranked if k is None else ranked[: max(k, 0)])

    # -- energy and carbon -----------------------------------------------------------------------

    def price_cny_per_kwh(self, site: str, hour_of_day: float) -> float:
        """Power price at a site at that CST hour of the day (see `hour_of_day_cst`)."""
        return self._schedule(site).at(hour_of_day)

    def mean_price_cny_per_kwh(self, site: str) -> float:
        """Daily mean power price at a site."""
        return self._schedule(site).mean_cny_per_kwh

    def energy_cost_cny(self, site: str, power_kw: float, start_hour: float, hours: float) -> float:
        """CNY to draw `power_kw` at a site for `hours` from CST `start_hour`; exact, O(1)."""
        return self._schedule(site).energy_cost_cny(power_kw, start_hour, hours)

    def carbon_kg(self, site: str, kwh: float) -> float:
        """Emissions of `kwh` at a site: kwh x grid factor x (1 - green share)."""
        return kwh * self.site(site).effective_carbon_kg_per_kwh

    # -- accelerators ----------------------------------------------------------------------------

    @property
    def accelerators(self) -> Mapping[str, AcceleratorModel]:
        """The accelerator catalogue: every model the topology knows (and every pool's model)."""
        return self._catalogue.models

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue object itself (reference model, speed-blindness)."""
        return self._catalogue

    @property
    def speed_blind(self) -> bool:
        """True for a topology from `with_equal_speeds`: every speed is 1.0."""
        return self._catalogue.speed_blind

    def accelerator(self, model: str) -> AcceleratorModel:
        """The catalogue entry of a model; UnknownAcceleratorError (a KeyError) otherwise."""
        return self._catalogue.model(model)

    def speed(self, model: str, reference: str, workload: str) -> float:
        """Throughput of `model` over `reference` in a workload class (1.0 if they are equal).

        Hours estimated on `reference` take `hours / speed(...)` on `model`. Raises
        UnknownAcceleratorError for an unknown model and ValueError for an unknown class.
        """
        return self._catalogue.speed(model, reference, workload)

    def with_equal_speeds(self) -> Topology:
        """The same topology whose `speed` is always 1.0: replays "as if all cards were equal".

        Power, memory and everything else stay; only duration scaling is switched off. Cheap:
        the route and price tables are shared, not rebuilt.
        """
        clone = copy.copy(self)
        clone._catalogue = self._catalogue.equal_speeds()
        return clone

    # -- internals -------------------------------------------------------------------------------

    def _schedule(self, site: str) -> PriceSchedule:
        try:
            return self._prices[site]
        except KeyError:
            raise UnknownNodeError(site, "site") from None

    def _node_index(self, node: str) -> int:
        try:
            return self._index[node]
        except KeyError:
            raise UnknownNodeError(node) from None

    def _locate(self, a: str, b: str) -> tuple[RouteRows, int, int, bool]:
        """Route rows, row, column and whether (a, b) was swapped; the lower index is the source."""
        i, j = self._node_index(a), self._node_index(b)
        flipped = j < i
        if flipped:
            i, j = j, i
        if i < len(self._sites):
            return self._rows, i, j, flipped
        return self._region_row(i), 0, j, flipped

    def _region_row(self, index: int) -> RouteRows:
        rows = self._region_rows.get(index)
        if rows is None:
            rows = self._planner.rows(np.asarray([index], dtype=np.int64))
            self._region_rows[index] = rows
        return rows

    def _rtt_to_sites(self, col: int) -> np.ndarray:
        n_sites = len(self._sites)
        column = np.array(self._rows.rtt_ms[:, col]) if n_sites else np.empty(0)
        # row i < col reads row i; for sites after col, symmetry says use col's own row
        if col < n_sites:
            column[col + 1 :] = self._rows.rtt_ms[col, col + 1 : n_sites]
        return column

    def _walk(self, pred_row: np.ndarray, a: str, b: str, col: int, flipped: bool) -> list[str]:
        source = self._index[b] if flipped else self._index[a]
        indices = walk_back(pred_row, source, col)
        if not indices:
            raise NoRouteError(a, b)
        ids = [self._node_ids[i] for i in indices]
        return ids[::-1] if flipped else ids

    def _link_arrays(self) -> LinkArrays:
        links = self._links
        return LinkArrays(
            n_nodes=len(self._node_ids),
            a=np.fromiter((self._index[x.a] for x in links), dtype=np.int64, count=len(links)),
            b=np.fromiter((self._index[x.b] for x in links), dtype=np.int64, count=len(links)),
            rtt_ms=np.fromiter((x.rtt_ms for x in links), dtype=np.float64, count=len(links)),
            bandwidth_gbps=np.fromiter(
                (x.bandwidth_gbps for x in links), dtype=np.float64, count=len(links)
            ),
            cny_per_gb=np.fromiter(
                (x.cny_per_gb for x in links), dtype=np.float64, count=len(links)
            ),
        )

    def _build_graph(self) -> nx.Graph:
        graph: nx.Graph = nx.Graph()
        graph.add_nodes_from((s.id, {"kind": "site", "record": s}) for s in self._sites)
        graph.add_nodes_from((r.id, {"kind": "region", "record": r}) for r in self._regions)
        graph.add_edges_from(
            (
                x.a,
                x.b,
                {
                    "rtt_ms": x.rtt_ms,
                    "bandwidth_gbps": x.bandwidth_gbps,
                    "cny_per_gb": x.cny_per_gb,
                },
            )
            for x in self._links
        )
        return nx.freeze(graph)

    def __repr__(self) -> str:
        sizes = f"sites={len(self._sites)}, regions={len(self._regions)}, links={len(self._links)}"
        return f"Topology({sizes})"

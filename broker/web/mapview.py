"""The map's layout: sites, user regions and links of the topology projected onto an SVG canvas,
sites sized by capacity and coloured by status, and jobs as flows from their origins."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from computenet.spec import JobSpec
from computenet.types import SiteStatus
from topology import Topology

WIDTH = 1000
HEIGHT = 640
MARGIN = 48
MIN_RADIUS = 6.0
MAX_RADIUS = 26.0

STATUS_COLOURS: Mapping[str, str] = {
    SiteStatus.ACTIVE.value: "#2e9d5b",
    SiteStatus.DRAINING.value: "#d9a21b",
    SiteStatus.SUSPECT.value: "#e0702c",
    SiteStatus.LOST.value: "#c8363a",
    SiteStatus.OFFLINE.value: "#8a8f98",
}
"""Fill of a site by status (also the legend)."""


@dataclass(frozen=True, slots=True)
class SiteMark:
    """A site on the canvas."""

    site_id: str
    name: str
    x: float
    y: float
    radius: float
    status: str
    colour: str
    cards: int


@dataclass(frozen=True, slots=True)
class RegionMark:
    """A user region on the canvas."""

    region_id: str
    name: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class LinkMark:
    """A link between two nodes; `backbone` when both ends are sites."""

    a: str
    b: str
    x1: float
    y1: float
    x2: float
    y2: float
    backbone: bool


@dataclass(frozen=True, slots=True)
class MapLayout:
    """Everything the map template draws, and node positions for live flows."""

    width: int
    height: int
    sites: tuple[SiteMark, ...]
    regions: tuple[RegionMark, ...]
    links: tuple[LinkMark, ...]
    positions: Mapping[str, tuple[float, float]]


class Projection:
    """Equirectangular, longitudes shrunk by the cosine of the mean latitude, fitted into the
    canvas with a margin and the aspect ratio kept."""

    def __init__(self, points: Sequence[tuple[float, float]], width: int, height: int) -> None:
        lats = [lat for lat, _ in points] or [0.0]
        lons = [lon for _, lon in points] or [0.0]
        self._shrink = math.cos(math.radians((min(lats) + max(lats)) / 2))
        self._lat_max, self._lon_min = max(lats), min(lons)
        span_x = max((max(lons) - min(lons)) * self._shrink, 1e-9)
        span_y = max(max(lats) - min(lats), 1e-9)
        self._scale = min((width - 2 * MARGIN) / span_x, (height - 2 * MARGIN) / span_y)
        # centre the drawing in the canvas
        self._dx = (width - span_x * self._scale) / 2
        self._dy = (height - span_y * self._scale) / 2

    def __call__(self, lat: float, lon: float) -> tuple[float, float]:
        x = self._dx + (lon - self._lon_min) * self._shrink * self._scale
        y = self._dy + (self._lat_max - lat) * self._scale
        return round(x, 1), round(y, 1)


def radius_for(cards: int, most_cards: int) -> float:
    """A site's radius: its area grows with its card count, between the two bounds."""
    if most_cards <= 0:
        return MIN_RADIUS
    share = math.sqrt(max(cards, 0) / most_cards)
    return round(MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * share, 1)


def layout(
    topology: Topology,
    statuses: Mapping[str, str],
    cards: Mapping[str, int] | None = None,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> MapLayout:
    """The map of `topology` with each site's status (unknown: offline) and card count
    (default: the topology's)."""
    points = [(s.lat, s.lon) for s in topology.sites] + [(r.lat, r.lon) for r in topology.regions]
    project = Projection(points, width, height)
    counts: dict[str, int] = {s.id: s.accelerator_count for s in topology.sites}
    counts.update(cards or {})
    most = max(counts.values(), default=0)
    positions: dict[str, tuple[float, float]] = {}
    sites = []
    for site in topology.sites:
        x, y = positions[site.id] = project(site.lat, site.lon)
        status = statuses.get(site.id, SiteStatus.OFFLINE.value)
        sites.append(
            SiteMark(
                site_id=site.id,
                name=site.name,
                x=x,
                y=y,
                radius=radius_for(counts[site.id], most),
                status=status,
                colour=STATUS_COLOURS.get(status, STATUS_COLOURS["offline"]),
                cards=counts[site.id],
            )
        )
    regions = []
    for region in topology.regions:
        x, y = positions[region.id] = project(region.lat, region.lon)
        regions.append(RegionMark(region.id, region.name or region.id, x, y))
    site_ids = {s.id for s in topology.sites}
    links = tuple(
        LinkMark(
            link.a,
            link.b,
            *positions[link.a],
            *positions[link.b],
            backbone=link.a in site_ids and link.b in site_ids,
        )
        for link in topology.links
        if link.a in positions and link.b in positions
    )
    return MapLayout(width, height, tuple(sites), tuple(regions), links, positions)


def flow_origins(spec: JobSpec) -> list[str]:
    """Where a job's flow starts: its users' regions (inference) or its data's origin."""
    if spec.inference is not None:
        return [demand.region for demand in spec.inference.user_regions]
    if spec.dataset is not None:
        return [spec.dataset.origin]
    return []

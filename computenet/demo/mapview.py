"""The demo's map: sites and user regions, with arrows from each job's data or users to its site."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from computenet.demo.accounting import PlacedJob
from computenet.demo.labels import LabelPlacer
from topology import Topology

KIND_COLOURS = {"training": "#7b3fa0", "inference": "#e6550d", "batch": "#3182bd"}
SIDE_COLOURS = {"east": "#9ecae1", "west": "#a1d99b"}
KIND_NAMES = {"training": "train", "inference": "infer", "batch": "batch"}
REGION_COLOUR = "#d62728"
Coords = dict[str, tuple[float, float]]


def _flows(jobs: Sequence[PlacedJob]) -> Counter[tuple[str, str, str]]:
    """Jobs per (source, site, kind); the source is the data origin, or the users' region."""
    return Counter(
        (j.user_region if j.kind == "inference" else j.origin, j.site, j.kind) for j in jobs
    )


def _frame(ax: Any, coords: Coords) -> None:
    """Fix limits and aspect first: label placement works in display coordinates."""
    lons = [c[0] for c in coords.values()]
    lats = [c[1] for c in coords.values()]
    ax.set_xlim(min(lons) - 3.0, max(lons) + 4.5)
    ax.set_ylim(min(lats) - 2.5, max(lats) + 1.5)
    ax.set_aspect(1.0 / math.cos(math.radians((min(lats) + max(lats)) / 2)))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.grid(True, alpha=0.2)


def _draw_links(ax: Any, topology: Topology, coords: Coords) -> None:
    from matplotlib.collections import LineCollection

    sites = set(topology.site_ids)
    segments = [(coords[x.a], coords[x.b]) for x in topology.links if {x.a, x.b} <= sites]
    ax.add_collection(LineCollection(segments, colors="#d0d0d0", linewidths=0.6, zorder=1))


def _draw_flows(ax: Any, flows: Counter[tuple[str, str, str]], coords: Coords) -> None:
    from matplotlib.patches import FancyArrowPatch

    most = max(flows.values(), default=1)
    for (source, site, kind), n in flows.items():
        if source == site or source not in coords:
            continue  # served where the data or the users are: counted in the site's label
        width = 0.8 + 4.0 * math.sqrt(n / most)
        arrow = FancyArrowPatch(
            coords[source], coords[site],
            connectionstyle="arc3,rad=0.18" if kind == "training" else "arc3,rad=-0.12",
            arrowstyle="-|>", mutation_scale=8 + 3 * width, linewidth=width,
            color=KIND_COLOURS.get(kind, "#555555"), alpha=0.55, zorder=2,
            shrinkA=2, shrinkB=9,
        )  # fmt: skip
        ax.add_patch(arrow)


def _site_label(site: str, side: str, jobs: Sequence[PlacedJob]) -> str:
    if not jobs:
        return f"{site} ({side})"
    kinds = Counter(j.kind for j in jobs)
    mix = " · ".join(f"{KIND_NAMES[k]} {kinds[k]}" for k in KIND_NAMES if kinds[k])
    card_h = sum(j.card_hours for j in jobs)
    cny = sum(j.energy_cny for j in jobs)
    return f"{site} ({side})\n{mix}\n{card_h:,.0f} card-h · ¥{cny:,.0f}"


def _site_sizes(topology: Topology, by_site: dict[str, list[PlacedJob]]) -> dict[str, float]:
    """Marker area (points²) per site: grows with the card-hours it ran."""
    hours = {s.id: sum(j.card_hours for j in by_site.get(s.id, [])) for s in topology.sites}
    most = max(hours.values(), default=0.0) or 1.0
    return {site: 90.0 + 1400.0 * math.sqrt(h / most) for site, h in hours.items()}


def _draw_points(ax: Any, topology: Topology, sizes: dict[str, float], busy: set[str]) -> None:
    for site in topology.sites:
        ax.scatter(
            [site.lon], [site.lat], s=sizes[site.id], color=SIDE_COLOURS[site.side],
            edgecolors="black", linewidths=1.4 if site.id in busy else 0.6, zorder=4,
        )  # fmt: skip
    ax.scatter(
        [r.lon for r in topology.regions], [r.lat for r in topology.regions], marker="^", s=45,
        color=REGION_COLOUR, edgecolors="black", linewidths=0.5, zorder=5,
    )  # fmt: skip


def _draw_labels(
    placer: LabelPlacer,
    topology: Topology,
    sizes: dict[str, float],
    by_site: dict[str, list[PlacedJob]],
) -> None:
    from matplotlib import patheffects

    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    radius = {s.id: math.sqrt(sizes[s.id]) / 2 for s in topology.sites}
    for site in topology.sites:
        placer.block_point((site.lon, site.lat), radius[site.id])
    for region in topology.regions:
        placer.block_point((region.lon, region.lat), 4.0)
    busiest = sorted(topology.sites, key=lambda s: -len(by_site.get(s.id, [])))
    for site in busiest:
        placed = by_site.get(site.id, [])
        placer.place(
            _site_label(site.id, site.side, placed), (site.lon, site.lat), radius[site.id] + 3,
            fontsize=8.5, weight="bold" if placed else "normal", zorder=6, path_effects=halo,
        )  # fmt: skip
    at_sites = {(s.lon, s.lat) for s in topology.sites}
    for region in topology.regions:
        if (region.lon, region.lat) not in at_sites:  # else the site's label names the place
            placer.place(
                region.id, (region.lon, region.lat), 5.0, fontsize=7.5, color="#a01010",
                zorder=6, path_effects=halo,
            )  # fmt: skip


def _legend(ax: Any) -> Any:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=KIND_COLOURS["training"], lw=3, label="training: data origin → site"),
        Line2D([], [], color=KIND_COLOURS["inference"], lw=3, label="inference: users → site"),
        Line2D([], [], marker="o", ls="", ms=10, mfc=SIDE_COLOURS["west"], mec="black",
               label="west site (size: card-hours run)"),
        Line2D([], [], marker="o", ls="", ms=10, mfc=SIDE_COLOURS["east"], mec="black",
               label="east site"),
        Line2D([], [], marker="^", ls="", ms=7, color=REGION_COLOUR, mec="black",
               label="user region"),
        Line2D([], [], color="#d0d0d0", lw=1, label="backbone link"),
    ]  # fmt: skip
    return ax.legend(handles=handles, loc="lower right", fontsize=8.5, framealpha=0.95)


def draw_map(
    topology: Topology, jobs: Sequence[PlacedJob], path: Path, *, title: str, notes: Sequence[str]
) -> Path:
    """Write the placements map as a PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    coords: Coords = {s.id: (s.lon, s.lat) for s in topology.sites}
    coords.update({r.id: (r.lon, r.lat) for r in topology.regions})
    by_site: dict[str, list[PlacedJob]] = defaultdict(list)
    for job in jobs:
        by_site[job.site].append(job)
    sizes = _site_sizes(topology, by_site)
    fig, ax = plt.subplots(figsize=(12, 10))
    try:
        ax.set_title(title, fontsize=13)
        _frame(ax, coords)
        _draw_links(ax, topology, coords)
        _draw_flows(ax, _flows(jobs), coords)
        _draw_points(ax, topology, sizes, set(by_site))
        note = ax.text(
            0.01, 0.01, "\n".join(notes), transform=ax.transAxes, va="bottom", ha="left",
            fontsize=9.5, zorder=7, bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.95},
        )  # fmt: skip
        placer = LabelPlacer(ax)
        placer.block(_legend(ax))
        placer.block(note)
        _draw_labels(placer, topology, sizes, by_site)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path

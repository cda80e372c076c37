"""Map picture of a topology: sites by card count and power price, links, user regions."""

from __future__ import annotations

import math
import os
from pathlib import Path

from topology.graph import Topology

_MAX_LABELS = 60


def render_map(
    topology: Topology, path: str | os.PathLike[str], *, title: str | None = None, dpi: int = 120
) -> Path:
    """Write a PNG map of the topology to `path` and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    coords: dict[str, tuple[float, float]] = {s.id: (s.lon, s.lat) for s in topology.sites}
    coords.update({r.id: (r.lon, r.lat) for r in topology.regions})
    fig, ax = plt.subplots(figsize=(11, 8.5))
    try:
        backbone = [x for x in topology.links if _both_sites(topology, x.a, x.b)]
        access = [x for x in topology.links if not _both_sites(topology, x.a, x.b)]
        widths = [
            0.4 + 1.6 * math.log10(max(x.bandwidth_gbps, 1.0)) / math.log10(400.0) for x in backbone
        ]
        ax.add_collection(
            LineCollection(
                [(coords[x.a], coords[x.b]) for x in backbone],
                colors="#5b7aa6",
                linewidths=widths,
                alpha=0.35,
                zorder=1,
            )
        )
        ax.add_collection(
            LineCollection(
                [(coords[x.a], coords[x.b]) for x in access],
                colors="#999999",
                linewidths=0.8,
                linestyles="dashed",
                alpha=0.7,
                zorder=1,
            )
        )
        sites = topology.sites
        cards = [s.accelerator_count for s in sites]
        scale = 550.0 / math.sqrt(max(max(cards, default=1), 1))
        points = ax.scatter(
            [s.lon for s in sites],
            [s.lat for s in sites],
            s=[40.0 + scale * math.sqrt(c) for c in cards],
            c=[s.mean_price_cny_per_kwh for s in sites],
            cmap="viridis_r",
            edgecolors="black",
            linewidths=0.8,
            zorder=3,
        )
        fig.colorbar(points, ax=ax, shrink=0.8, label="mean power price (CNY/kWh)")
        regions = topology.regions
        ax.scatter(
            [r.lon for r in regions],
            [r.lat for r in regions],
            marker="^",
            s=[30.0 + 400.0 * r.demand_weight for r in regions],
            color="#d9534f",
            edgecolors="black",
            linewidths=0.5,
            zorder=4,
        )
        if len(sites) + len(regions) <= _MAX_LABELS:
            halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
            for s in sites:
                ax.annotate(
                    f"{s.id}\n{s.accelerator_count} cards",
                    (s.lon, s.lat),
                    xytext=(9, 4),
                    textcoords="offset points",
                    fontsize=8,
                    weight="bold",
                    zorder=5,
                    path_effects=halo,
                )
            for r in regions:
                ax.annotate(
                    r.id,
                    (r.lon, r.lat),
                    xytext=(-4, -11),
                    textcoords="offset points",
                    ha="right",
                    fontsize=7,
                    color="#a02020",
                    zorder=5,
                    path_effects=halo,
                )
        ax.legend(
            handles=[
                Line2D(
                    [],
                    [],
                    marker="o",
                    ls="",
                    color="#3b8a6e",
                    mec="black",
                    ms=10,
                    label="site (size: accelerator cards)",
                ),
                Line2D(
                    [],
                    [],
                    marker="^",
                    ls="",
                    color="#d9534f",
                    mec="black",
                    ms=8,
                    label="user region (size: demand)",
                ),
                Line2D(
                    [], [], color="#5b7aa6", lw=1.5, alpha=0.6, label="backbone link (width: Gbps)"
                ),
                Line2D([], [], color="#999999", lw=0.8, ls="dashed", label="access link"),
            ],
            loc="lower right",
            fontsize=8,
        )
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
        ax.set_title(
            title or f"Compute federation: {len(sites)} sites, {len(regions)} user regions"
        )
        ax.set_aspect(1.0 / math.cos(math.radians(_mid_lat(topology))))
        ax.autoscale_view()
        ax.margins(x=0.12, y=0.08)
        ax.grid(True, alpha=0.25)
        out = Path(path)
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def _both_sites(topology: Topology, a: str, b: str) -> bool:
    graph = topology.graph
    return bool(graph.nodes[a]["kind"] == "site" and graph.nodes[b]["kind"] == "site")


def _mid_lat(topology: Topology) -> float:
    lats = [s.lat for s in topology.sites] + [r.lat for r in topology.regions]
    return (min(lats) + max(lats)) / 2 if lats else 0.0

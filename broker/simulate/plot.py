"""Bar charts comparing policies on energy, carbon, SLO attainment and queue wait (Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from broker.simulate.metrics import PolicyMetrics
from broker.simulate.report import TRACE_CITATION

_PANELS = (
    ("energy_cny", "Energy cost (CNY)"),
    ("carbon_t", "Carbon (tCO2)"),
    ("slo_attainment", "Inference SLO attainment (fraction)"),
    ("wait_mean_h", "Mean queue wait (h)"),
)


def plot_comparison(results: Mapping[str, PolicyMetrics], path: Path, *, title: str) -> None:
    """Write a 2x2 bar chart PNG of the policies' key metrics to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    colors = [f"C{k}" for k in range(len(names))]
    for ax, (field, label) in zip(axes.flat, _PANELS, strict=True):
        values = [getattr(results[n], field) or 0.0 for n in names]
        bars = ax.bar(names, values, color=colors)
        ax.bar_label(
            bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in values], fontsize=8
        )
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        if field == "slo_attainment":
            ax.set_ylim(0, 1.05)
    fig.suptitle(title)
    fig.text(0.01, 0.005, TRACE_CITATION, fontsize=6, ha="left", va="bottom")
    fig.savefig(path, dpi=120)
    plt.close(fig)

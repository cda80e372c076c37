"""Presentation of a comparison: the JSON document and the readable table."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from broker.simulate.load import OfferedLoad
from broker.simulate.metrics import PolicyMetrics

TRACE_CITATION = (
    "Traces: Microsoft Philly (msr-fiddle/philly-traces via petuum/adaptdl), Alibaba "
    "cluster-trace-gpu-v2023 and cluster-trace-v2026-GenAI (alibaba/clusterdata)."
)


def report_json(
    results: Mapping[str, PolicyMetrics],
    *,
    workload: str,
    topology: str,
    capacity_scale: float,
    seed: int,
    offered: OfferedLoad,
    load_target: float | None = None,
    arrival_factor: float = 1.0,
    speed_blind: bool = False,
) -> dict[str, object]:
    """The documented JSON shape of `simulate --json`."""
    return {
        "policies": {name: m.to_json() for name, m in results.items()},
        "workload": workload,
        "topology": topology,
        "capacity_scale": capacity_scale,
        "seed": seed,
        "offered_load": offered.to_json(),
        "load_target": load_target,
        "arrival_factor": round(arrival_factor, 6),
        "speed_blind": speed_blind,
    }


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _rows(m: PolicyMetrics) -> list[tuple[str, str]]:
    gap = None if m.lp_gap is None else 100 * m.lp_gap
    return [
        ("energy (CNY)", f"{m.energy_cny:,.0f}"),
        ("energy (MWh)", f"{m.energy_kwh / 1000:,.1f}"),
        ("carbon (tCO2)", f"{m.carbon_t:,.2f}"),
        ("inference SLO (fraction)", _opt(m.slo_attainment, ".3f")),
        ("training JCT mean (h)", _opt(m.jct_mean_h, ".3f")),
        ("training JCT p95 (h)", _opt(m.jct_p95_h, ".3f")),
        ("wait mean (h)", f"{m.wait_mean_h:.3f}"),
        ("wait p95 (h)", f"{m.wait_p95_h:.3f}"),
        ("utilisation (window)", f"{m.utilization_overall:.2%}"),
        *((f"utilisation {name}", f"{u:.2%}") for name, u in m.utilization_classes.items()),
        ("utilisation east", f"{m.utilization_east:.2%}"),
        ("utilisation west", f"{m.utilization_west:.2%}"),
        ("data moved (TB)", f"{m.data_moved_tb:.2f}"),
        ("decision p50 (ms)", f"{m.decision_ms_p50:.3f}"),
        ("total cost (CNY)", f"{m.total_cost_cny:,.0f}"),
        ("LP gap (%)", _opt(gap, ".2f")),
        ("jobs run", str(m.jobs)),
        ("still queued at end", str(m.stranded)),
        ("too large for any pool", str(m.unplaceable)),
        ("replay wall time (s)", f"{m.wall_s:.2f}"),
    ]


def render_table(
    results: Mapping[str, PolicyMetrics], *, title: str, console: Console | None = None
) -> None:
    """Print one column per policy, one row per metric."""
    table = Table(title=title, caption=TRACE_CITATION)
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    columns = [_rows(m) for m in results.values()]
    if columns:
        for k, (label, _) in enumerate(columns[0]):
            table.add_row(label, *(column[k][1] for column in columns))
    (console or Console()).print(table)


def render_load(offered: OfferedLoad, console: Console | None = None) -> None:
    """Print the offered load per accelerator class and the window it is measured over."""
    parts = [
        f"{name} {'-' if value is None else format(value, '.3g')}"
        for name, value in offered.classes.items()
    ]
    (console or Console()).print(
        f"offered load over the {offered.window.hours:,.1f} h replay window "
        f"({offered.demand_card_h:,.0f} card-hours demanded): {', '.join(parts)}"
    )


def _side(m: PolicyMetrics) -> dict[str, object]:
    return {
        "energy_cny": round(m.energy_cny, 2),
        "carbon_t": round(m.carbon_t, 4),
        "total_cost_cny": round(m.total_cost_cny, 2),
    }


def rebalancing_json(
    without: Mapping[str, PolicyMetrics], with_runs: Mapping[str, PolicyMetrics], every_h: float
) -> dict[str, object]:
    """The `rebalancing` object of `simulate --json`: each policy without and with runs."""
    policies: dict[str, object] = {}
    for name, base in without.items():
        moved = with_runs[name]
        policies[name] = {
            "without": _side(base),
            "with": {
                **_side(moved),
                "runs": moved.rebalance_runs,
                "migrations": moved.migrations,
                "migration_cost_cny": round(moved.migration_cost_cny, 2),
            },
            "saved": {
                "energy_cny": round(base.energy_cny - moved.energy_cny, 2),
                "carbon_t": round(base.carbon_t - moved.carbon_t, 4),
                "total_cost_cny": round(base.total_cost_cny - moved.total_cost_cny, 2),
            },
        }
    return {"every_h": every_h, "policies": policies}


def render_rebalancing(
    without: Mapping[str, PolicyMetrics],
    with_runs: Mapping[str, PolicyMetrics],
    every_h: float,
    console: Console | None = None,
) -> None:
    """Print energy, carbon and total cost of each policy without and with rebalancing runs."""
    table = Table(title=f"rebalancing every {every_h:g} h")
    for column in ("policy", "energy CNY", "with runs", "carbon t", "with runs", "migrations"):
        table.add_column(column, justify="right")
    for name, base in without.items():
        moved = with_runs[name]
        table.add_row(
            name, f"{base.energy_cny:,.0f}", f"{moved.energy_cny:,.0f}",
            f"{base.carbon_t:,.2f}", f"{moved.carbon_t:,.2f}", str(moved.migrations),
        )  # fmt: skip
    (console or Console()).print(table)

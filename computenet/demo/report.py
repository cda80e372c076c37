"""Printing the demo's summary: where jobs went, energy and carbon against the baseline."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from computenet.demo.summary import KINDS, SIDES, Summary

TRACE_SOURCES = (
    "Traces: Microsoft Philly DL training (msr-fiddle/philly-traces, as processed in "
    "petuum/adaptdl); Alibaba GenAI serving (alibaba/clusterdata cluster-trace-v2026-GenAI)."
)


def placement_table(summary: Summary) -> Table:
    """Jobs and card-hours per site, grouped east then west, with side subtotals."""
    table = Table(title="Where the jobs went", title_justify="left")
    table.add_column("side")
    table.add_column("site")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    table.add_column("card-hours", justify="right")
    table.add_column("energy CNY", justify="right")
    for side in SIDES:
        rows = [r for r in summary.sites if r.side == side]
        for row in rows:
            table.add_row(
                side, row.site, *(str(row.jobs.get(k, 0)) for k in KINDS),
                f"{row.card_hours:,.1f}", f"{row.energy_cny:,.2f}",
            )  # fmt: skip
        table.add_row(
            f"[bold]{side}[/]", "[bold]total[/]",
            *(f"[bold]{summary.placements[k][side]}[/]" for k in KINDS),
            f"[bold]{sum(summary.card_hours[k][side] for k in KINDS):,.1f}[/]",
            f"[bold]{sum(r.energy_cny for r in rows):,.2f}[/]",
            end_section=True,
        )  # fmt: skip
    return table


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _counts(summary: Summary) -> tuple[str, str]:
    """Every job of each arm: how many ran and what became of the others."""
    states = summary.states
    ours = ", ".join(f"{n} {state}" for state, n in states.items())
    b = summary.baseline
    theirs = f"{b.jobs} ran, {b.still_queued} still queued, {b.too_large} too large"
    return ours, theirs


def load_sentence(summary: Summary) -> str:
    """What the federation was and how loaded: stated with every summary."""
    load = summary.load
    overall = load.offered.overall
    return (
        f"Offered load {'-' if overall is None else format(overall, '.2f')} card-hours per "
        f"card-hour over the slice's {load.offered.window.hours:,.1f} trace hours, on "
        f"{load.cards:,} cards (every pool x{load.scale:.4g})"
    )


def comparison_table(summary: Summary) -> Table:
    """The demo's placements against the simulator's `nearest` replay of the same jobs."""
    t, b = summary.totals, summary.baseline
    table = Table(title="ComputeNet vs. nearest site, same jobs", title_justify="left")
    for column in ("", "ComputeNet", b.policy, "change"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    ours, theirs = _counts(summary)
    table.add_row(f"jobs ({summary.submitted})", ours, theirs, "")
    table.add_row(
        "wait mean h", f"{t.wait_mean_h:,.2f}", f"{b.wait_mean_h:,.2f}",
        f"{t.wait_mean_h - b.wait_mean_h:+.2f}",
    )  # fmt: skip
    saving = f"{-summary.saving_pct:+.1f} %"
    table.add_row("energy CNY", f"{t.energy_cny:,.2f}", f"{b.energy_cny:,.2f}", saving)
    carbon_pct = 100.0 * (t.carbon_t - b.carbon_t) / b.carbon_t if b.carbon_t > 0 else 0.0
    table.add_row("carbon t", f"{t.carbon_t:,.3f}", f"{b.carbon_t:,.3f}", f"{carbon_pct:+.1f} %")
    slo_change = (
        f"{t.slo_attainment - b.slo_attainment:+.3f}"
        if t.slo_attainment is not None and b.slo_attainment is not None
        else "-"
    )
    table.add_row(
        "inference SLO (fraction)", _fraction(t.slo_attainment), _fraction(b.slo_attainment),
        slo_change,
    )  # fmt: skip
    return table


def map_title(summary: Summary) -> str:
    """The map's title, from the results."""
    train = summary.card_hours.get("training", {})
    total = sum(train.values())
    west = 100.0 * train.get("west", 0.0) / total if total > 0 else 0.0
    t = summary.totals
    return (
        f"ComputeNet demo: {west:.0f} % of training card-hours west, "
        f"{t.inference_within_slo}/{t.inference_jobs} inference jobs within SLO, energy "
        f"{-summary.saving_pct:+.1f} % vs nearest"
    )


def map_notes(summary: Summary, days: int) -> list[str]:
    """The map's captions, from the results."""
    t, b = summary.totals, summary.baseline
    ours, theirs = _counts(summary)
    load = summary.load
    overall = load.offered.overall
    return [
        f"{summary.submitted} jobs from the first {days} trace days (Philly + Alibaba GenAI)",
        f"offered load {'-' if overall is None else format(overall, '.2f')} over "
        f"{load.offered.window.hours:,.1f} trace h, on {load.cards:,} cards "
        f"(pools x{load.scale:.3g})",
        f"ComputeNet: {ours}; nearest: {theirs}",
        f"energy ¥{t.energy_cny:,.0f} vs ¥{b.energy_cny:,.0f} nearest "
        f"({-summary.saving_pct:+.1f} %); carbon {t.carbon_t:,.2f} t vs {b.carbon_t:,.2f} t",
        f"inference SLO {_fraction(t.slo_attainment)} (nearest {_fraction(b.slo_attainment)}); "
        f"mean wait {t.wait_mean_h:,.2f} h (nearest {b.wait_mean_h:,.2f} h)",
    ]


def print_summary(console: Console, summary: Summary, broker: str, keep_running: bool) -> None:
    """The closing report for a terminal."""
    states = ", ".join(f"{n} {state}" for state, n in summary.states.items())
    console.print()
    console.print(f"[bold]{summary.submitted} jobs[/]: {states}")
    console.print(load_sentence(summary) + ".")
    console.print(placement_table(summary))
    console.print(comparison_table(summary))
    train = summary.card_hours["training"]
    west = train["west"] / max(train["east"] + train["west"], 1e-9) * 100.0
    t = summary.totals
    console.print(
        f"Training card-hours run west: {west:.1f} %. Inference jobs within their latency SLO: "
        f"{t.inference_within_slo}/{t.inference_jobs}."
    )
    console.print(
        "[dim]Energy (topology.energy) = cards at their workload's utilisation plus their host "
        "share, x PUE, priced at the site's hourly CST tariff from the trace hour each job "
        "started, for every job that ran (failed and cancelled ones as long as they held "
        "cards), from the broker's records; SLO = fraction of inference card-hours within the "
        "job's RTT SLO of its users; nearest = the simulator's replay of the same jobs on the "
        "same cards at the site nearest their data or users.[/]"
    )
    console.print(f"[dim]{TRACE_SOURCES}[/]")
    console.print(f"Map: [bold]{summary.map_png}[/]")
    workdir = summary.extra.get("workdir")
    if workdir:
        console.print(f"Kept: {workdir} (broker.db, logs, workload.csv, placements.json)")
    console.print(f"Took {summary.elapsed_s:.0f} s.")
    if keep_running:
        console.print(f"\nThe federation is still up at [bold]{broker}[/]. Explore it with:")
    else:
        console.print("\nRun with --keep-running to leave the federation up and explore it with:")
    ca, token_file = summary.extra.get("ca"), summary.extra.get("token_file")
    if ca and token_file:
        console.print(f"  export COMPUTENET_CA={ca} COMPUTENET_TOKEN=$(cat {token_file})")
    console.print(f"  computenet jobs list --broker {broker}")
    console.print(f"  computenet explain JOB_ID --broker {broker}")
    console.print(f"  computenet sites --broker {broker}")
    if keep_running:
        console.print("Press Ctrl-C to stop it.")

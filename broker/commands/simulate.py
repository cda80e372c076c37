"""The `computenet-broker simulate` command: replay workloads under several policies and compare."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from broker.simulate import (
    DEFAULT_LIMIT,
    Scenario,
    UnknownPolicyError,
    WorkloadError,
    compare,
    export_jobs,
    load_workload,
    parse_policies,
)
from broker.simulate.compare import jobs_at_load, scenario_load
from broker.simulate.load import LoadError
from broker.simulate.plot import plot_comparison
from broker.simulate.report import (
    rebalancing_json,
    render_load,
    render_rebalancing,
    render_table,
    report_json,
)
from broker.simulate.tenants_report import render_tenants, tenants_json
from broker.tenancy import TenantsTable
from computenet.cli.runner import EXIT_USAGE, fail
from topology import Topology, TopologyError, default_topology, load_topology

PROG = "computenet-broker simulate"
DEFAULT_CAPACITY_SCALE = 0.032
"""The federation at 3.2 %: short of cards at --load 0.8-1.0 (docs/simulator.md)."""
LONG_RUN_JOBS = 20_000


def _topology(path: Path | None) -> tuple[Topology, str]:
    if path is None:
        return default_topology(), "default"
    try:
        return load_topology(path), str(path)
    except TopologyError as exc:
        fail(PROG, str(exc), EXIT_USAGE)


def _tenants(path: Path | None) -> TenantsTable | None:
    if path is None:
        return None
    from broker.commands.config import exit_with_issues
    from broker.config import BrokerConfigError
    from broker.config.tenants_file import load_tenants_file

    try:
        return load_tenants_file(path)
    except BrokerConfigError as exc:
        exit_with_issues(exc.issues, prefix=f"{PROG}: ")


def _load_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def simulate_command(
    workload: Annotated[
        str,
        typer.Option(
            help="Named workload(s) (philly, alibaba-gpu2023, alibaba-genai) or CSV "
            "file(s), comma-separated to merge on one timeline."
        ),
    ] = "philly,alibaba-genai",
    policy: Annotated[
        str,
        typer.Option(
            help="Policies, comma-separated: nearest, cheapest-energy, random, greedy, optimal."
        ),
    ] = "nearest,cheapest-energy,greedy,optimal",
    topology: Annotated[
        Path | None, typer.Option(help="Topology YAML; the built-in national network if unset.")
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Replay the first N jobs of the merged timeline (0: all).", min=0)
    ] = DEFAULT_LIMIT,
    seed: Annotated[int, typer.Option(help="Seed of region/origin draws and `random`.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG bar chart of the comparison.")
    ] = None,
    capacity_scale: Annotated[
        float,
        typer.Option(
            help="Multiply every accelerator pool by this factor (the default keeps Philly's "
            "largest gang, 16 cards, within every 512-card pool; 1: the full federation).",
            min=0.0,
        ),
    ] = DEFAULT_CAPACITY_SCALE,
    export_workload: Annotated[
        Path | None, typer.Option(help="Write the replayed jobs in the normalised CSV format.")
    ] = None,
    load: Annotated[
        float | None,
        typer.Option(
            help="Compress (or stretch) arrivals so the offered load of the most loaded "
            "accelerator class is L (card-hours demanded per card-hour available over the "
            "replay window); unset: the trace's own pace.",
            min=0.0,
        ),
    ] = None,
    speed_blind: Annotated[
        bool,
        typer.Option(
            "--speed-blind",
            help="Policies decide as if every card were equally fast (runs still take as long "
            "as the card they got makes them): what heterogeneity awareness buys.",
        ),
    ] = False,
    rebalance_every: Annotated[
        float,
        typer.Option(
            help="Also replay with a rebalancing run every HOURS (migrating running training "
            "jobs) and report both (0: off).",
            min=0.0,
        ),
    ] = 0.0,
    tenants: Annotated[
        Path | None,
        typer.Option(
            help="Tenants YAML (`tenants:` and optionally `tenancy:` at the top level, as in the "
            "broker config file, which may be given itself): replay each policy with the "
            "tenancy core admitting and ordering the queue by the jobs' `tenant`, and report "
            "per-tenant waits and Jain's fairness index, with and without tenancy.",
        ),
    ] = None,
    preempt: Annotated[
        bool,
        typer.Option(
            "--preempt",
            help="With --tenants: stop borrowed jobs for tenants below their nominal quota whose "
            "jobs wait (requeued; a training job resumes from a checkpoint).",
        ),
    ] = False,
) -> None:
    """Replay a workload under several placement policies; compare cost, carbon, SLO and waits."""
    try:
        names = parse_policies(policy)
    except UnknownPolicyError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    topo, topo_name = _topology(topology)
    table = _tenants(tenants)
    if preempt and table is None:
        fail(PROG, "--preempt needs --tenants", EXIT_USAGE)
    try:
        loaded = load_workload(workload, topo, seed=seed, limit=limit or None)
    except WorkloadError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    jobs, factor = list(loaded.jobs), 1.0
    if load is not None:
        try:
            jobs, factor = jobs_at_load(jobs, topo, capacity_scale, load)
        except LoadError as exc:
            fail(PROG, str(exc), EXIT_USAGE)
    if export_workload is not None:
        export_jobs(jobs, export_workload)
    scenario = Scenario(
        tuple(jobs),
        topo,
        capacity_scale=capacity_scale,
        seed=seed,
        speed_blind=speed_blind,
        tenants=table,
        preempt=preempt,
    )
    offered = scenario_load(scenario)
    long_run = len(loaded.jobs) >= LONG_RUN_JOBS
    results = compare(scenario, names, progress=long_run)
    plain = None
    if table is not None:
        # the same workload with tenancy off: Jain's index like with like
        plain = compare(
            dataclasses.replace(scenario, admit_tenants=False), names, progress=long_run
        )
    rebalanced = None
    if rebalance_every > 0:
        with_runs = dataclasses.replace(scenario, rebalance_every_h=rebalance_every)
        rebalanced = compare(with_runs, names, progress=long_run)
    for name, metrics in results.items():
        if metrics.stranded or metrics.unplaceable:
            print(
                f"{PROG}: {name}: {metrics.stranded} job(s) still queued at the end, "
                f"{metrics.unplaceable} too large for any pool at this capacity scale",
                file=sys.stderr,
            )
    title = (
        f"{loaded.name}: {len(jobs)} jobs, capacity x{capacity_scale:g}, "
        f"offered load {_load_text(offered.overall)} (peak class {_load_text(offered.peak)}), "
        f"arrivals x{factor:.4g}, seed {seed}{', speed-blind' if speed_blind else ''}"
        f"{f', tenants {tenants}' if tenants is not None else ''}"
    )
    if plot is not None:
        plot_comparison(results, plot, title=title)
    if json_out:
        document = report_json(
            results,
            workload=loaded.name,
            topology=topo_name,
            capacity_scale=capacity_scale,
            seed=seed,
            offered=offered,
            load_target=load,
            arrival_factor=factor,
            speed_blind=speed_blind,
        )
        if rebalanced is not None:
            document["rebalancing"] = rebalancing_json(results, rebalanced, rebalance_every)
        if plain is not None:
            document["tenants"] = tenants_json(
                results, plain, file=str(tenants), preemption=preempt
            )
        print(json.dumps(document, indent=2))
    else:
        render_table(results, title=title)
        render_load(offered)
        if rebalanced is not None:
            render_rebalancing(results, rebalanced, rebalance_every)
        if plain is not None:
            render_tenants(results, plain)


__all__ = ["simulate_command"]

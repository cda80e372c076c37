"""The offline `computenet-broker plan` command: where a spec would go on an idle federation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from computenet.cli.placements import show_placement
from computenet.cli.runner import EXIT_USAGE, fail
from computenet.cli.tables import OutputOption, output_format
from computenet.errors import SpecError
from computenet.spec import load_spec

PROG = "computenet-broker"


def plan_command(
    file: Annotated[Path, typer.Argument(help="Job spec file (YAML or JSON).", show_default=False)],
    topology: Annotated[
        Path | None,
        typer.Option("--topology", help="Topology YAML; the built-in national network if unset."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Plan a job against every site's declared pools, all free, without a broker."""
    from broker.placement import FederationSnapshot, Policy, place
    from topology import TopologyError, default_topology, load_topology

    fmt = output_format(output, json_out)
    try:
        spec = load_spec(file)
    except SpecError as exc:
        # one line naming the file, line and field of each problem, as `computenet submit` says
        fail(PROG, exc.message, EXIT_USAGE)
    try:
        network = load_topology(topology) if topology is not None else default_topology()
    except TopologyError as exc:
        for issue in exc.issues[1:]:
            typer.echo(f"  {issue}", err=True)
        fail(PROG, str(exc.issues[0]), EXIT_USAGE)
    snapshot = FederationSnapshot.all_free(network, time.time())
    placement = place(spec, snapshot, Policy.default())
    show_placement(placement, fmt, f"plan for {spec.name} ({spec.kind}), all pools free")

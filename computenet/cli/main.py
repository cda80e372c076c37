"""The `computenet` user CLI: one typer app with a sub-command group per area."""

from __future__ import annotations

from typing import Annotated

import typer

from computenet.cli import accounting as accounting_cmd
from computenet.cli import cluster as cluster_cmd
from computenet.cli import config as config_cmd
from computenet.cli import demand as demand_cmd
from computenet.cli import demo as demo_cmd
from computenet.cli import jobs as jobs_cmd
from computenet.cli import rebalance as rebalance_cmd
from computenet.cli import sites as sites_cmd
from computenet.cli import topology as topology_cmd
from computenet.cli.runner import run_app

app = typer.Typer(
    name="computenet",
    help="Submit, watch, explain and cancel jobs on the ComputeNet federation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("submit")(jobs_cmd.submit)
app.command("plan")(jobs_cmd.plan)
app.command("explain")(jobs_cmd.explain)
app.command("demo")(demo_cmd.demo)
app.command("usage")(accounting_cmd.usage)
app.command("queue")(accounting_cmd.queue)
app.command("tenants")(accounting_cmd.tenants)
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(sites_cmd.app, name="sites")
app.add_typer(rebalance_cmd.app, name="rebalance")
app.add_typer(topology_cmd.app, name="topology")
app.add_typer(cluster_cmd.app, name="cluster")
app.add_typer(demand_cmd.app, name="demand")
app.add_typer(config_cmd.app, name="config")


@app.callback()
def _root(
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            envvar="COMPUTENET_CONTEXT",
            show_envvar=True,
            help="Context of the client config file to use instead of its current one.",
        ),
    ] = None,
) -> None:
    """Submit, watch, explain and cancel jobs on the ComputeNet federation."""


def main() -> None:
    """Entry point of the `computenet` console script."""
    run_app(app, "computenet")

"""The `computenet-broker` command: serve the federation, and offline tools for operators."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from broker.commands.certs import certs_app
from broker.commands.plan import plan_command
from broker.commands.simulate import simulate_command
from broker.commands.tokens import tokens_app
from computenet.address import AddressError, parse_address
from computenet.cli.runner import EXIT_USAGE, fail, run_app

PROG = "computenet-broker"

app = typer.Typer(
    name=PROG,
    help="The ComputeNet broker: places jobs across the federation and tracks them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


app.command("plan")(plan_command)
app.command("simulate")(simulate_command)
app.add_typer(certs_app, name="certs")
app.add_typer(tokens_app, name="tokens")


@app.callback()
def _root() -> None:
    """ComputeNet broker."""


@app.command()
def serve(
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve gRPC on (port 0: any).")] = (
        "127.0.0.1:50051"
    ),
    db: Annotated[
        str, typer.Option(help="Database URL (sqlite:///FILE or postgresql+psycopg://...).")
    ] = "sqlite:///computenet-broker.db",
    topology: Annotated[
        Path | None, typer.Option(help="Topology YAML; the built-in national network if unset.")
    ] = None,
    metrics_listen: Annotated[
        str, typer.Option(help="HOST:PORT for the Prometheus endpoint; empty to disable.")
    ] = "",
    suspect_after: Annotated[
        float, typer.Option(help="Seconds without a report before a site is suspect.", min=0.1)
    ] = 15.0,
    lost_after: Annotated[
        float, typer.Option(help="Seconds without a report before a site is lost.", min=0.1)
    ] = 60.0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Serve the broker until SIGTERM or SIGINT."""
    try:
        address = parse_address(listen)
        metrics = parse_address(metrics_listen) if metrics_listen else None
    except AddressError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    if lost_after <= suspect_after:
        fail(PROG, "--lost-after must be greater than --suspect-after", EXIT_USAGE)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from broker.app import BrokerSettings, serve_forever

    settings = BrokerSettings(
        listen=address,
        db_url=db,
        topology_path=topology,
        metrics_listen=metrics,
        suspect_after_s=suspect_after,
        lost_after_s=lost_after,
    )
    try:
        asyncio.run(serve_forever(settings))
    except OSError as exc:
        fail(PROG, f"cannot serve: {exc}")


def main() -> None:
    """Entry point of the `computenet-broker` console script."""
    run_app(app, PROG)

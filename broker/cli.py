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
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="Folder from `certs init`: serve TLS, agents on a separate mTLS port."),
    ] = None,
    agent_listen: Annotated[
        str, typer.Option(help="HOST:PORT of the agents' mTLS port (default: any free port).")
    ] = "",
    tokens: Annotated[
        Path | None, typer.Option(help="Client token file (`computenet-broker tokens add`).")
    ] = None,
    revocations: Annotated[
        Path | None, typer.Option(help="YAML of revoked certificate serials and sites.")
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Plaintext, loopback only: for local demos and tests.")
    ] = False,
    submit_rate: Annotated[
        float, typer.Option(help="Submissions per second per tenant (0: unlimited).", min=0)
    ] = 200.0,
    rebalance_every: Annotated[
        float, typer.Option(help="Seconds between scheduled rebalancing runs (0: off).", min=0)
    ] = 900.0,
    rebalance_dry_run: Annotated[
        bool, typer.Option(help="Scheduled rebalancing runs only plan and record.")
    ] = False,
    broker_id: Annotated[
        str, typer.Option(help="Replica id for the rebalancing lease (default: unique per run).")
    ] = "",
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Serve the broker until SIGTERM or SIGINT."""
    try:
        address = parse_address(listen)
        metrics = parse_address(metrics_listen) if metrics_listen else None
        agents = parse_address(agent_listen) if agent_listen else None
    except AddressError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    if lost_after <= suspect_after:
        fail(PROG, "--lost-after must be greater than --suspect-after", EXIT_USAGE)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from broker.app import BrokerSettings, serve_forever
    from broker.rebalance.service import RebalanceSettings
    from broker.security.limits import LimitSettings
    from broker.security.setup import SecurityConfigError, SecuritySettings, build_security

    limits = (
        LimitSettings(submit_rate_per_s=submit_rate, submit_burst=max(20, int(submit_rate * 2)))
        if submit_rate > 0
        else LimitSettings(rate_limited_methods=frozenset())
    )
    security = SecuritySettings(
        tls_dir=tls_dir,
        agent_listen=agents,
        tokens_path=tokens,
        revocations_path=revocations,
        insecure=insecure,
        limits=limits,
    )
    try:
        build_security(security, address)  # check early: a usage error, not a crash
    except (SecurityConfigError, OSError) as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    settings = BrokerSettings(
        listen=address,
        db_url=db,
        topology_path=topology,
        metrics_listen=metrics,
        suspect_after_s=suspect_after,
        lost_after_s=lost_after,
        security=security,
        rebalance=RebalanceSettings(
            every_s=rebalance_every, holder=broker_id, dry_run=rebalance_dry_run
        ),
    )
    try:
        asyncio.run(serve_forever(settings))
    except OSError as exc:
        fail(PROG, f"cannot serve: {exc}")


def main() -> None:
    """Entry point of the `computenet-broker` console script."""
    run_app(app, PROG)

"""The `computenet-agent` command: check a site's configuration, or run the agent."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from computenet.cli.runner import EXIT_USAGE, fail, run_app
from computenet.logging_setup import configure_logging
from site_agent.config import AgentConfig, ConfigError, load_config

PROG = "computenet-agent"
EXIT_REJECTED = 2

app = typer.Typer(
    name=PROG,
    help="The ComputeNet site agent: advertises this site's capacity and runs its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Agent config YAML.")]


@app.callback()
def _root() -> None:
    """ComputeNet site agent."""


def _load(config: Path, **overrides: str | None) -> AgentConfig:
    try:
        return load_config(config, **overrides)
    except ConfigError as exc:
        fail(PROG, str(exc), EXIT_USAGE)


@app.command()
def check(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    connect: Annotated[bool, typer.Option(help="Also check the broker answers.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.", min=0.1)] = 5.0,
) -> None:
    """Validate the config, probe capacity, and print what the agent would advertise."""
    from site_agent.app import advertised, make_capacity_source, make_checkpoint_transfer
    from site_agent.capacity.base import CapacityError

    cfg = _load(config)
    source = make_capacity_source(cfg)
    try:
        snap = source.probe()
    except CapacityError as exc:
        fail(PROG, f"capacity source {cfg.capacity.source}: {exc}")
    for line in [*getattr(source, "warnings", ()), *make_checkpoint_transfer(cfg).warnings()]:
        print(f"warning: {line}", file=sys.stderr)
    unreachable = asyncio.run(_unreachable(cfg, timeout)) if connect else {}
    if len(unreachable) == len(cfg.brokers):
        fail(PROG, "; ".join(unreachable.values()))
    report = advertised(cfg, snap)
    if as_json:
        print(json.dumps(report, sort_keys=True))
        return
    if len(cfg.brokers) == 1:
        print(f"site {cfg.site} -> broker {cfg.broker} (executor {cfg.executor.kind})")
    else:
        tried = ", ".join(cfg.brokers)
        print(f"site {cfg.site} -> brokers {tried}, tried in turn (executor {cfg.executor.kind})")
    for pool in snap.pools:
        print(f"  {pool.model}: {pool.allocatable}/{pool.total} allocatable, {pool.in_use} in use")
    print(f"  cpu_cores {snap.cpu_cores:g}, memory_gb {snap.memory_gb:g}")
    if connect:
        for address in cfg.brokers:
            print(f"  {unreachable.get(address, f'broker {address} reachable')}")


async def _unreachable(cfg: AgentConfig, timeout_s: float) -> dict[str, str]:
    """Why each broker address that does not answer within the timeout is unreachable."""
    from site_agent.link import credentials_for, probe_broker

    credentials = credentials_for(cfg.tls)
    server_name = cfg.tls.server_name if cfg.tls else None

    async def probe(address: str) -> str:
        try:
            await probe_broker(address, timeout_s, credentials, server_name)
        except ConnectionError as exc:
            return str(exc)
        return ""

    errors = await asyncio.gather(*(probe(address) for address in cfg.brokers))
    return {address: error for address, error in zip(cfg.brokers, errors, strict=True) if error}


@app.command()
def run(
    config: ConfigOption,
    site: Annotated[str | None, typer.Option(help="Override the site id.")] = None,
    broker: Annotated[
        str | None,
        typer.Option(help="Override the broker HOST:PORT (several: comma-separated)."),
    ] = None,
) -> None:
    """Run the agent until SIGTERM or SIGINT (running jobs keep running unless configured)."""
    cfg = _load(config, site=site, broker=broker)
    configure_logging(cfg.log_level)
    from site_agent.app import serve
    from site_agent.link import SiteRejectedError

    try:
        asyncio.run(serve(cfg))
    except SiteRejectedError as exc:
        fail(PROG, str(exc), EXIT_REJECTED)


def main() -> None:
    """Entry point of the `computenet-agent` console script."""
    run_app(app, PROG)

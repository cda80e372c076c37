"""The `computenet-agent` command: check a site's configuration, or run the agent."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from computenet.cli.runner import EXIT_USAGE, fail, run_app
from site_agent.config import AgentConfig, ConfigError, load_config

PROG = "computenet-agent"
EXIT_REJECTED = 2

app = typer.Typer(
    name=PROG,
    help="The ComputeNet site agent: advertises this site's capacity and runs its jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
    from site_agent.app import advertised, make_capacity_source
    from site_agent.capacity.base import CapacityError

    cfg = _load(config)
    try:
        snap = make_capacity_source(cfg).probe()
    except CapacityError as exc:
        fail(PROG, f"capacity source {cfg.capacity.source}: {exc}")
    if connect:
        from site_agent.link import credentials_for, probe_broker

        try:
            server_name = cfg.tls.server_name if cfg.tls else None
            asyncio.run(probe_broker(cfg.broker, timeout, credentials_for(cfg.tls), server_name))
        except ConnectionError as exc:
            fail(PROG, str(exc))
    report = advertised(cfg, snap)
    if as_json:
        print(json.dumps(report, sort_keys=True))
        return
    print(f"site {cfg.site} -> broker {cfg.broker} (executor {cfg.executor.kind})")
    for pool in snap.pools:
        print(f"  {pool.model}: {pool.allocatable}/{pool.total} allocatable, {pool.in_use} in use")
    print(f"  cpu_cores {snap.cpu_cores:g}, memory_gb {snap.memory_gb:g}")
    if connect:
        print(f"  broker {cfg.broker} reachable")


@app.command()
def run(
    config: ConfigOption,
    site: Annotated[str | None, typer.Option(help="Override the site id.")] = None,
    broker: Annotated[str | None, typer.Option(help="Override the broker HOST:PORT.")] = None,
) -> None:
    """Run the agent until SIGTERM or SIGINT (running jobs keep running unless configured)."""
    cfg = _load(config, site=site, broker=broker)
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from site_agent.app import serve
    from site_agent.link import SiteRejectedError

    try:
        asyncio.run(serve(cfg))
    except SiteRejectedError as exc:
        fail(PROG, str(exc), EXIT_REJECTED)


def main() -> None:
    """Entry point of the `computenet-agent` console script."""
    run_app(app, PROG)

"""`computenet-broker config check|show`: validate a broker config file, print the effective one."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml

from computenet.cli.runner import EXIT_USAGE
from located_yaml import LocatedIssue

PROG = "computenet-broker"

config_app = typer.Typer(
    help="Check a broker config file, or show the effective configuration.",
    no_args_is_help=True,
)


def exit_with_issues(issues: Iterable[LocatedIssue], *, prefix: str = "") -> NoReturn:
    """Print every issue on its own line of stderr (`file:line: field: message`) and exit 2."""
    for issue in issues:
        print(f"{prefix}{issue}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


@config_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="Broker config YAML.", show_default=False)],
) -> None:
    """Validate FILE (and the topology file it names); print OK or every problem."""
    from broker.config import BrokerConfigError, load_broker_config
    from topology import TopologyError, load_topology

    try:
        config = load_broker_config(file)
        if config.topology.path is not None:
            load_topology(config.topology.path)
    except (BrokerConfigError, TopologyError) as exc:
        exit_with_issues(exc.issues)
    typer.echo(f"{file}: OK")


@config_app.command("show")
def show_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="Broker config YAML; defaults only if unset.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the effective configuration: the file with every default filled in."""
    from broker.config import BrokerConfigError, load_broker_config

    try:
        effective = load_broker_config(config).model_dump(mode="json")
    except BrokerConfigError as exc:
        exit_with_issues(exc.issues)
    if json_out:
        typer.echo(json.dumps(effective, indent=2))
        return
    source = str(config) if config is not None else "no file"
    typer.echo(f"# effective broker configuration ({source}, defaults filled in)")
    typer.echo(yaml.safe_dump(effective, sort_keys=False, allow_unicode=True).rstrip())

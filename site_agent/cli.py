"""The `computenet-agent` command: check a site's configuration, or run the agent."""

from __future__ import annotations

import asyncio
import json
import os
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
    connect: Annotated[
        bool, typer.Option(help="Also call each broker: credentials, site, clock skew.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.", min=0.1)] = 5.0,
) -> None:
    """Preflight: config, state dir, TLS files, Slurm and munge, capacity and GRES mapping,
    checkpoint store and (--connect) the brokers; one PASS/WARN/FAIL line each, exit 1 on FAIL."""
    from site_agent import preflight_probes as probes
    from site_agent.app import advertised
    from site_agent.preflight import Check, Verdict, brokers, failed

    cfg = _load(config)
    env = dict(os.environ)
    plural = "es" if len(cfg.brokers) > 1 else ""
    checks = [
        Check(
            Verdict.PASS,
            "config",
            f"{config}: site {cfg.site}, executor {cfg.executor.kind}, "
            f"{len(cfg.brokers)} broker address{plural}",
        ),
        probes.state_dir(cfg.state_dir),
        *probes.tls(cfg),
        *probes.slurm(cfg, env),
    ]
    capacity, snap = probes.capacity(cfg, env)
    energy, snap = probes.energy(cfg, snap)
    checks += [*capacity, *energy, *probes.checkpoints(cfg)]
    if connect:
        checks += brokers(cfg.site, asyncio.run(probes.broker_outcomes(cfg, timeout)))
    else:
        checks.append(Check(Verdict.SKIP, "broker", "not called (add --connect)"))
    bad = failed(checks)
    if as_json:
        report = advertised(cfg, snap) if snap is not None else {"site": cfg.site}
        print(json.dumps({**report, "checks": [c.to_dict() for c in checks]}, sort_keys=True))
    else:
        executor = f"(executor {cfg.executor.kind})"
        if len(cfg.brokers) == 1:
            print(f"site {cfg.site} -> broker {cfg.broker} {executor}")
        else:
            print(f"site {cfg.site} -> brokers {', '.join(cfg.brokers)}, tried in turn {executor}")
        for item in checks:
            print(item.line())
    if bad:
        names = ", ".join(dict.fromkeys(c.name for c in bad))
        fail(PROG, f"{len(bad)} check{'s' if len(bad) > 1 else ''} failed: {names}")


@app.command("install-unit")
def install_unit(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Agent config the unit runs with (made absolute)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write here (a folder: FOLDER/computenet-agent.service); else stdout."),
    ] = None,
) -> None:
    """Print or write the systemd unit of the agent, running this installation's agent."""
    from site_agent.systemd import AGENT_UNIT, agent_unit, installed_agent

    if config is not None:
        _load(config)  # a unit that runs a broken config would only restart-loop
    text = agent_unit(config, installed_agent())
    if output is None:
        sys.stdout.write(text)
        return
    target = output / AGENT_UNIT if output.is_dir() else output
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(PROG, f"cannot write {target}: {exc.strerror or exc}", EXIT_USAGE)
    print(f"wrote {target}; then: systemctl daemon-reload && systemctl enable --now {AGENT_UNIT}")


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

"""`computenet-broker serve`: run the broker from a config file, flags overriding the file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from broker.commands.config import exit_with_issues
from computenet.cli.runner import EXIT_USAGE, fail
from computenet.logging_setup import configure_logging
from located_yaml import Loc, Override

PROG = "computenet-broker"


def serve_command(
    config: Annotated[
        Path | None,
        typer.Option(help="Broker config YAML (docs/broker-config.md); flags override it."),
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="gRPC HOST:PORT, port 0: any (config: listen.grpc).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="sqlite:///FILE or postgresql+psycopg://... (config: store.url)."),
    ] = None,
    topology: Annotated[
        Path | None,
        typer.Option(help="Topology YAML; unset: the national network (config: topology.path)."),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="Prometheus HOST:PORT; empty: off (config: listen.metrics)."),
    ] = None,
    http_listen: Annotated[
        str | None,
        typer.Option(help="Web console HOST:PORT; empty: off (config: listen.http)."),
    ] = None,
    suspect_after: Annotated[
        float | None,
        typer.Option(help="Silent seconds to suspect (config: liveness.suspect_after_s).", min=0.1),
    ] = None,
    lost_after: Annotated[
        float | None,
        typer.Option(help="Silent seconds to lost (config: liveness.lost_after_s).", min=0.1),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(help="Agent lease seconds (config: liveness.lease_s).", min=0.1),
    ] = None,
    clock_skew_margin: Annotated[
        float | None,
        typer.Option(help="Lease-to-lost margin (config: liveness.clock_skew_margin_s).", min=0),
    ] = None,
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="Folder from `certs init` (config: security.tls_dir)."),
    ] = None,
    agent_listen: Annotated[
        str | None,
        typer.Option(help="Agents' mTLS HOST:PORT; empty: any (config: listen.agents)."),
    ] = None,
    tokens: Annotated[
        Path | None,
        typer.Option(help="Client token file from `tokens add` (config: security.tokens)."),
    ] = None,
    revocations: Annotated[
        Path | None,
        typer.Option(help="Revoked serials and sites (config: security.revocations)."),
    ] = None,
    insecure: Annotated[
        bool | None,
        typer.Option(help="Plaintext on loopback, for demos (config: security.insecure)."),
    ] = None,
    submit_rate: Annotated[
        float | None,
        typer.Option(help="Per-tenant submissions/s (config: limits.submit_rate_per_s).", min=0),
    ] = None,
    rebalance_every: Annotated[
        float | None,
        typer.Option(
            help="Seconds between runs; 0: crontab runs only (config: rebalance.every_s).", min=0
        ),
    ] = None,
    rebalance_dry_run: Annotated[
        bool | None,
        typer.Option(help="Scheduled runs only plan (config: rebalance.dry_run)."),
    ] = None,
    broker_id: Annotated[
        str | None,
        typer.Option(
            help="This replica's id, also its rebalancing holder (config: cluster.replica_id)."
        ),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(help="HOST:PORT clients are referred to (config: cluster.advertise)."),
    ] = None,
    advertise_agents: Annotated[
        str | None,
        typer.Option(help="HOST:PORT agents are referred to (config: cluster.advertise_agents)."),
    ] = None,
    leader_lease: Annotated[
        float | None,
        typer.Option(help="Leader lease seconds (config: cluster.leader_lease_s).", min=0.1),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level (config: log_level).")] = None,
) -> None:
    """Serve the broker until SIGTERM or SIGINT."""
    flags: list[tuple[Loc, str, Any]] = [
        (("listen", "grpc"), "--listen", listen),
        (("listen", "agents"), "--agent-listen", agent_listen),
        (("listen", "metrics"), "--metrics-listen", metrics_listen),
        (("listen", "http"), "--http-listen", http_listen),
        (("store", "url"), "--db", db),
        (("topology", "path"), "--topology", _absolute(topology)),
        (("liveness", "suspect_after_s"), "--suspect-after", suspect_after),
        (("liveness", "lost_after_s"), "--lost-after", lost_after),
        (("liveness", "lease_s"), "--lease", lease),
        (("liveness", "clock_skew_margin_s"), "--clock-skew-margin", clock_skew_margin),
        (("security", "tls_dir"), "--tls-dir", _absolute(tls_dir)),
        (("security", "tokens"), "--tokens", _absolute(tokens)),
        (("security", "revocations"), "--revocations", _absolute(revocations)),
        (("security", "insecure"), "--insecure", insecure),
        (("limits", "submit_rate_per_s"), "--submit-rate", submit_rate),
        (("rebalance", "every_s"), "--rebalance-every", rebalance_every),
        (("rebalance", "dry_run"), "--rebalance-dry-run", rebalance_dry_run),
        (("cluster", "replica_id"), "--broker-id", broker_id),
        (("cluster", "advertise"), "--advertise", advertise),
        (("cluster", "advertise_agents"), "--advertise-agents", advertise_agents),
        (("cluster", "leader_lease_s"), "--leader-lease", leader_lease),
        (("log_level",), "--log-level", log_level.upper() if log_level else None),
    ]
    given = [
        Override(loc, None if value == "" and loc in _EMPTY_IS_NULL else value, flag)
        for loc, flag, value in flags
        if value is not None
    ]
    _serve(config, given)


_EMPTY_IS_NULL: set[Loc] = {("listen", "agents"), ("listen", "metrics"), ("listen", "http")}
"""Flags whose empty value sets the field to null (a free port, no metrics) over the file's."""


def _absolute(path: Path | None) -> str | None:
    # relative paths in flags are relative to the working directory, not to the config file
    return str(path.absolute()) if path is not None else None


def _serve(config_path: Path | None, overrides: list[Override]) -> None:
    from broker.app import serve_forever
    from broker.config import BrokerConfigError, load_broker_config
    from broker.config.settings import broker_settings
    from broker.security.setup import SecurityConfigError, build_security
    from broker.store import ReplicaConflictError

    try:
        config = load_broker_config(config_path, overrides)
    except BrokerConfigError as exc:
        exit_with_issues(exc.issues, prefix=f"{PROG}: error: ")
    configure_logging(config.log_level)
    settings = broker_settings(config, config_path.absolute() if config_path else None)
    try:
        # check early, for a usage error; the broker logs the outcome (an insecure-mode warning)
        # when it builds its security again as it starts, so this check stays silent
        with _silenced("broker.security.transport"):
            build_security(settings.security, settings.listen)
        if settings.http_listen is not None:
            from broker.web.server import console_tls

            console_tls(settings.http_listen, settings.security.tls_dir)
    except (SecurityConfigError, OSError) as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    try:
        asyncio.run(serve_forever(settings))
    except ReplicaConflictError as exc:
        fail(PROG, str(exc))
    except OSError as exc:
        fail(PROG, f"cannot serve: {exc}")


@contextlib.contextmanager
def _silenced(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    before, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = before

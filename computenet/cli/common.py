"""Options, connection and output helpers shared by the CLI commands that talk to the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from computenet.cli.config import connection
from computenet.cli.safe_text import echo, error_line
from computenet.client import DEFAULT_TIMEOUT_S, Client
from computenet.errors import InvalidArgumentError
from computenet.spec import JobSpec, load_spec
from computenet.tls import tls_channel_credentials
from computenet.types import Job, JobEvent, SiteInfo

PROG = "computenet"
EXIT_FAILURE = 1
EXIT_USAGE = 2

BrokerOption = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="COMPUTENET_BROKER",
        help="Broker address HOST:PORT, or the addresses of several replicas separated by commas.",
        show_envvar=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Deadline of each attempt of a call, seconds."),
]


def console() -> Console:
    """A stdout console; built per command so tests and pipes get the current stdout."""
    return Console(highlight=False, soft_wrap=False)


def fail_with_violations(exc: InvalidArgumentError, code: int) -> NoReturn:
    """Print the error and every field violation on stderr, one per line, and exit."""
    echo(f"{PROG}: error: {exc.message}", err=True)
    for violation in exc.violations:
        echo(f"  {violation.field}: {violation.description}", err=True)
    raise typer.Exit(code)


def connect(broker: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client for `--broker` (one address or several, comma-separated), with TLS and token
    from COMPUTENET_CA / COMPUTENET_TOKEN; what none of those give comes from the current
    context of the client config file (docs/cli.md, "Profiles").

    A malformed address, unreadable CA file or broken config file is a usage error (exit 2).
    """
    conn = connection(broker)
    try:
        credentials = tls_channel_credentials(conn.ca) if conn.ca else None
        return Client(
            address=conn.broker, timeout_s=timeout_s, credentials=credentials, token=conn.token
        )
    except InvalidArgumentError as exc:
        echo(f"{PROG}: error: {exc.message}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@contextmanager
def reporting_violations() -> Iterator[None]:
    """Show server-side INVALID_ARGUMENT errors with all their violations (exit 1)."""
    try:
        yield
    except InvalidArgumentError as exc:
        if exc.status_code is None:
            raise  # raised locally, before any call: the caller decides how to report it
        fail_with_violations(exc, EXIT_FAILURE)


def read_spec(path: Path) -> JobSpec:
    """Load a spec file; anything wrong with it is one line on stderr and exit status 2.

    The line names the file, the line and the field where known (`bad.yaml:2: kind: ...`).
    """
    try:
        return load_spec(path)
    except InvalidArgumentError as exc:
        echo(error_line(PROG, exc.message), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def job_dict(job: Job) -> dict[str, Any]:
    """The JSON shape of a job in `jobs get` and `jobs list`."""
    return {
        "job_id": job.job_id,
        "name": job.spec.name,
        "kind": job.kind.value,
        "state": job.state.value,
        "site": job.site,
        "tenant": job.tenant,
        "attempt": job.attempt,
        "pool": job.pool,
        "cancel_requested": job.cancel_requested,
        "migration_target": job.migration_target,
        "reason": job.reason,
        "exit_code": job.exit_code,
        "last_sequence": job.last_sequence,
        "created_unix_ms": job.created_unix_ms,
        "updated_unix_ms": job.updated_unix_ms,
        "request_id": job.request_id,
    }


def event_dict(event: JobEvent) -> dict[str, Any]:
    """The JSON Lines shape of one event in `jobs watch`."""
    return {
        "sequence": event.sequence,
        "job_id": event.job_id,
        "state": event.state.value,
        "site": event.site,
        "attempt": event.attempt,
        "cause": event.cause,
        "message": event.message,
        "exit_code": event.exit_code,
        "time_unix_ms": event.time_unix_ms,
    }


def site_dict(site: SiteInfo) -> dict[str, Any]:
    """The JSON shape of a site in `sites`."""
    return {
        "site_id": site.site_id,
        "name": site.name,
        "province": site.province,
        "side": site.side,
        "status": site.status.value,
        "pools": [
            {
                "model": p.model,
                "total": p.total,
                "allocatable": p.allocatable,
                "in_use": p.in_use,
                "federation_in_use": p.federation_in_use,
                "held": p.held,
                "free": p.free,
            }
            for p in site.pools
        ],
        "cpu_cores": site.cpu_cores,
        "memory_gb": site.memory_gb,
        "last_report_unix_ms": site.last_report_unix_ms,
        "running_jobs": site.running_jobs,
        "executor": site.executor,
        "agent_version": site.agent_version,
        "capacity_stale": site.capacity_stale,
        "capacity_error": site.capacity_error,
        "capacity_unix_ms": site.capacity_unix_ms,
    }


def age(unix_ms: int, now_unix_ms: int | None = None) -> str:
    """A short human age such as `12s`, `5m`, `3h`, `2d`; `never` for 0."""
    if unix_ms <= 0:
        return "never"
    now = now_unix_ms if now_unix_ms is not None else int(time.time() * 1000)
    seconds = max(0, (now - unix_ms) // 1000)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

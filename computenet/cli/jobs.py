"""`computenet submit|plan|explain` and `computenet jobs ...`: job commands, through the SDK."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from computenet.cli.common import (
    BrokerOption,
    JsonOption,
    TimeoutOption,
    connect,
    event_dict,
    job_dict,
    read_spec,
    reporting_violations,
)
from computenet.cli.placements import Waiting, capacity_by_site, show_placement, show_waiting
from computenet.cli.safe_text import echo, emit_json
from computenet.cli.tables import (
    Column,
    Grid,
    OutputOption,
    emit_document,
    is_document,
    output_format,
    print_grid,
)
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S, Client
from computenet.errors import ComputeNetError
from computenet.types import Job, JobEvent, JobKind, JobState

app = typer.Typer(help="List, inspect, watch and cancel jobs.", no_args_is_help=True)

SpecFile = Annotated[Path, typer.Argument(help="Job spec file (YAML or JSON).", show_default=False)]
JobIdArg = Annotated[str, typer.Argument(help="Job id.", show_default=False)]


def submit(
    spec_file: SpecFile,
    request_id: Annotated[
        str | None,
        typer.Option("--request-id", help="Idempotency key; resubmitting with it is safe."),
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Submit a job spec; prints the job id, its state and its site."""
    spec = read_spec(spec_file)
    with connect(broker, timeout_s) as client, reporting_violations():
        result = client.submit(spec, request_id=request_id)
    job = result.job
    if as_json:
        emit_json({"job_id": job.job_id, "state": job.state.value, "site": job.site})
        return
    note = " (already submitted with this request id)" if result.duplicate else ""
    where = f" at {job.site}" if job.site else ""
    reason = f": {job.reason}" if job.reason and not job.site else ""
    echo(f"{job.job_id} {job.state.value}{where}{reason}{note}")


def plan(
    spec_file: SpecFile,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Show where a spec would go now and at what cost, without submitting it."""
    fmt = output_format(output, as_json)
    spec = read_spec(spec_file)
    with connect(broker, timeout_s) as client, reporting_violations():
        placement = client.plan(spec)
    show_placement(placement, fmt, f"plan for {spec.name} ({spec.kind})")


def explain(
    job_id: JobIdArg,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Show why a job was placed where it was and why not elsewhere; for a pending job, why
    it waits now: every site with its live capacity and verdict, and its place in the queue."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        placement = client.explain(job_id)
        job = client.get(job_id)  # after: a pending job now was pending when explained
        if job.state is not JobState.PENDING:
            show_placement(placement, fmt, f"placement of {job_id}")
            return
        waiting = _waiting(client, job)
    show_waiting(job_id, placement, waiting, fmt)


def _waiting(client: Client, job: Job) -> Waiting:
    """The job's queue entry and each site's capacity now, as far as the broker tells: the
    live plan stands without them (an older broker, a caller not allowed to list sites)."""
    try:
        queued = next((q for q in client.queue() if q.job_id == job.job_id), None)
    except ComputeNetError:
        queued = None
    try:
        capacity = capacity_by_site(client.sites())
    except ComputeNetError:
        capacity = {}
    return Waiting(job_reason=job.reason, queued=queued, capacity=capacity)


def jobs_grid(jobs: list[Job]) -> Grid:
    """Jobs with id, state and site always; name, kind, attempt as the width allows; reason
    last (wrapped, or below the table when narrow); tenant and pool with `-o wide`."""
    grid = Grid(
        [
            Column("job id"),
            Column("name", drop=1),
            Column("kind", drop=4),
            Column("state"),
            Column("site"),
            Column("attempt", "right", drop=3),
            Column("tenant", wide=True),
            Column("pool", wide=True),
            Column("reason", prose=True, drop=2),
        ]
    )
    for j in jobs:
        grid.add(
            j.job_id, j.spec.name, j.kind.value, j.state.value, j.site or "-", j.attempt,
            j.tenant, j.pool or "-", j.reason,
        )  # fmt: skip
    return grid


@app.command("list")
def list_jobs(
    state: Annotated[JobState | None, typer.Option("--state", help="Only this state.")] = None,
    kind: Annotated[JobKind | None, typer.Option("--kind", help="Only this kind.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Only jobs at this site.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many jobs.")] = 100,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """List jobs, oldest first."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        found = client.list(
            state=state, kind=kind, site=site, tenant=tenant, page_size=min(limit, 1000)
        )
        jobs = list(itertools.islice(found, limit))
    if is_document(fmt):
        emit_document([job_dict(j) for j in jobs], fmt)
        return
    print_grid(jobs_grid(jobs), fmt)


def _print_job(job: Job) -> None:
    fields = job_dict(job)
    fields["site"] = job.site or "-"
    fields["exit_code"] = "-" if job.exit_code is None else job.exit_code
    for key in ("created_unix_ms", "updated_unix_ms"):
        fields[key.removesuffix("_unix_ms")] = _timestamp(fields.pop(key))
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        echo(f"{key:<{width}}  {value}")


def _timestamp(unix_ms: int) -> str:
    if unix_ms <= 0:
        return "-"
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).isoformat(timespec="seconds")


@app.command("get")
def get_job(
    job_id: JobIdArg,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Show one job."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        job = client.get(job_id)
    if is_document(fmt):
        emit_document(job_dict(job), fmt)
    else:
        _print_job(job)


def _event_line(event: JobEvent, *, with_job: bool = False) -> str:
    parts = [
        f"#{event.sequence}",
        *([event.job_id] if with_job else []),
        _timestamp(event.time_unix_ms),
        event.state.value,
        event.site or "-",
        f"attempt={event.attempt}",
        f"cause={event.cause}",
    ]
    if event.exit_code is not None:
        parts.append(f"exit_code={event.exit_code}")
    if event.message:
        parts.append(event.message)
    return "  ".join(parts)


@app.command("watch")
def watch_jobs(
    job_id: Annotated[
        str | None,
        typer.Argument(help="Job id; without one, every matching job.", show_default=False),
    ] = None,
    kind: Annotated[
        JobKind | None, typer.Option("--kind", help="Only jobs of this kind (no job id).")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's jobs (no job id).")
    ] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only events after this sequence number.")
    ] = 0,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Print events as they happen: one job's until it ends, or every matching job's."""
    if job_id is not None and (kind is not None or tenant is not None):
        raise typer.BadParameter("--kind and --tenant select jobs; give them without a job id")
    with connect(broker, timeout_s) as client:
        if job_id is not None:
            events = client.watch(job_id, after_sequence=after)
        else:
            events = client.watch_all(after_sequence=after, kind=kind, tenant=tenant)
        # click.echo flushes each line, so a pipe sees events as they happen.
        for event in events:
            if as_json:
                emit_json(event_dict(event))
            else:
                echo(_event_line(event, with_job=job_id is None))


@app.command("cancel")
def cancel_job(
    job_id: JobIdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the job's history.")] = "",
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Cancel a job (a running one stops when its site confirms)."""
    with connect(broker, timeout_s) as client:
        job = client.cancel(job_id, reason)
    if as_json:
        emit_json(job_dict(job))
    elif job.state is JobState.CANCELLED:
        echo(f"{job.job_id} cancelled")
    else:
        echo(f"{job.job_id} {job.state.value}; cancelling when its site confirms")

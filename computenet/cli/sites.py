"""`computenet sites`: the federation's member sites, their capacity, and draining them."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.text import Text

from computenet.cli.common import (
    BrokerOption,
    JsonOption,
    TimeoutOption,
    age,
    connect,
    console,
    site_dict,
)
from computenet.cli.safe_text import cell, echo, emit_json
from computenet.cli.tables import (
    Column,
    Grid,
    OutputOption,
    emit_document,
    is_document,
    output_format,
    print_grid,
)
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S
from computenet.types import SiteInfo, SiteStatus

app = typer.Typer(help="Show member sites and their capacity; drain or resume a site.")

_STATUS_STYLE = {
    SiteStatus.ACTIVE: "green",
    SiteStatus.SUSPECT: "yellow",
    SiteStatus.LOST: "red",
    SiteStatus.DRAINING: "magenta",
    SiteStatus.OFFLINE: "dim",
}


def _pools(site: SiteInfo) -> str:
    return ", ".join(f"{p.model} {p.free}/{p.total}" for p in site.pools) or "-"


def sites_table(sites: list[SiteInfo], now_unix_ms: int) -> Grid:
    """Sites with status, free/total accelerators per pool and the last report's age; side,
    jobs, executor and agent version as the width allows (or with `-o wide`)."""
    grid = Grid(
        [
            Column("id"),
            Column("status"),
            Column("side", drop=2),
            Column("pools free/total"),
            Column("jobs", "right", drop=1),
            Column("last report", drop=3),
            Column("executor", wide=True),
            Column("agent", wide=True),
        ]
    )
    for s in sites:
        status = Text.assemble(cell(s.status.value, _STATUS_STYLE.get(s.status, "")))
        if s.capacity_stale:
            status.append(" stale", style="yellow")
        grid.add(
            s.site_id, status, s.side, _pools(s), s.running_jobs,
            age(s.last_report_unix_ms, now_unix_ms), s.executor or "-", s.agent_version or "-",
        )  # fmt: skip
    return grid


@app.callback(invoke_without_command=True)
def list_sites(
    ctx: typer.Context,
    status: Annotated[
        SiteStatus | None, typer.Option("--status", help="Only sites with this status.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """List the federation's sites (or run a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        sites = client.sites(status=status)
    if is_document(fmt):
        emit_document([site_dict(s) for s in sites], fmt)
    else:
        print_grid(sites_table(sites, int(time.time() * 1000)), fmt)


def pools_table(site: SiteInfo) -> Grid:
    """One site's pools: what is allocatable, what the broker holds, what is busy, what is free."""
    grid = Grid(
        [
            Column("pool"),
            Column("total", "right"),
            Column("allocatable", "right", drop=2),
            Column("held", "right"),
            Column("in use", "right"),
            Column("of which federation", "right", drop=1),
            Column("free", "right"),
        ]
    )
    for p in site.pools:
        grid.add(p.model, p.total, p.allocatable, p.held, p.in_use, p.federation_in_use, p.free)
    return grid


@app.command("get")
def get_site(
    site_id: Annotated[str, typer.Argument(help="Site id.", show_default=False)],
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """One site with its pools as the capacity ledger sees them (free = allocatable - held -
    in use by others)."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        site = client.site(site_id)
    if is_document(fmt):
        emit_document(site_dict(site), fmt)
        return
    out = console()
    out.print(
        cell(f"{site.site_id} ({site.name}, {site.province}, {site.side}) {site.status.value}")
    )
    print_grid(pools_table(site), fmt, out)
    out.print(
        cell(
            f"cpu cores {site.cpu_cores:g}, memory {site.memory_gb:g} GB, jobs {site.running_jobs}"
        )
    )
    if site.capacity_stale:
        # heartbeats arrive, the probe fails: the figures above are the last good report
        seen = age(site.capacity_unix_ms)
        out.print(
            Text.assemble(
                ("capacity stale", "yellow"),
                cell(f" (last good report {seen} ago): {site.capacity_error}"),
            )
        )


@app.command("drain")
def drain_site(
    site_id: Annotated[str, typer.Argument(help="Site id.", show_default=False)],
    undo: Annotated[bool, typer.Option("--undo", help="Resume placing work there.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Stop placing new work at a site; rebalancing moves its work away."""
    with connect(broker, timeout_s) as client:
        site = client.drain(site_id, drain=not undo)
    if as_json:
        emit_json(site_dict(site))
    else:
        echo(f"{site.site_id} {site.status.value}")

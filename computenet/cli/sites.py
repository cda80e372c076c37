"""`computenet sites`: the federation's member sites, their capacity, and draining them."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table
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


def sites_table(sites: list[SiteInfo], now_unix_ms: int) -> Table:
    """Sites with status, side, free/total accelerators per pool and the last report's age."""
    table = Table("id", "status", "side", "pools free/total", "jobs", "last report")
    for s in sites:
        status = Text.assemble(cell(s.status.value, _STATUS_STYLE.get(s.status, "")))
        if s.capacity_stale:
            status.append(" stale", style="yellow")
        table.add_row(
            cell(s.site_id), status, cell(s.side), cell(_pools(s)), cell(s.running_jobs),
            cell(age(s.last_report_unix_ms, now_unix_ms)),
        )  # fmt: skip
    return table


@app.callback(invoke_without_command=True)
def list_sites(
    ctx: typer.Context,
    status: Annotated[
        SiteStatus | None, typer.Option("--status", help="Only sites with this status.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """List the federation's sites (or run a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(broker, timeout_s) as client:
        sites = client.sites(status=status)
    if as_json:
        emit_json([site_dict(s) for s in sites])
    else:
        console().print(sites_table(sites, int(time.time() * 1000)))


def pools_table(site: SiteInfo) -> Table:
    """One site's pools: what is allocatable, what the broker holds, what is busy, what is free."""
    table = Table("pool", "total", "allocatable", "held", "in use", "of which federation", "free")
    for p in site.pools:
        row = (p.model, p.total, p.allocatable, p.held, p.in_use, p.federation_in_use, p.free)
        table.add_row(*map(cell, row))
    return table


@app.command("get")
def get_site(
    site_id: Annotated[str, typer.Argument(help="Site id.", show_default=False)],
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """One site with its pools as the capacity ledger sees them (free = allocatable - held -
    in use by others)."""
    with connect(broker, timeout_s) as client:
        site = client.site(site_id)
    if as_json:
        emit_json(site_dict(site))
        return
    out = console()
    out.print(
        cell(f"{site.site_id} ({site.name}, {site.province}, {site.side}) {site.status.value}")
    )
    out.print(pools_table(site))
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

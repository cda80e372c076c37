"""`computenet topology`: show, route, validate and generate federation topologies, offline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from computenet.cli.safe_text import echo
from computenet.cli.tables import (
    Column,
    Grid,
    OutputFormat,
    OutputOption,
    emit_document,
    output_format,
    print_grid,
)
from computenet.printable import escaped_json
from topology import Topology, TopologyError, default_topology, load_topology
from topology.errors import NoRouteError, UnknownNodeError

app = typer.Typer(
    help="Inspect the federation topology (sites, user regions, links).",
    no_args_is_help=True,
)

TopologyOption = Annotated[
    Path | None,
    typer.Option("--topology", "-t", help="topology YAML file (default: built-in China topology)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def _fail(message: str) -> NoReturn:
    echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _load(path: Path | None) -> Topology:
    if path is None:
        return default_topology()
    try:
        return load_topology(path)
    except TopologyError as exc:
        more = len(exc.issues) - 1
        suffix = f" (+{more} more; run `computenet topology validate {path}`)" if more else ""
        _fail(f"{exc.issues[0]}{suffix}")


def topology_json(topo: Topology) -> dict[str, Any]:
    """The `show --json` document."""
    return {
        "sites": [
            {
                "id": s.id,
                "name": s.name,
                "province": s.province,
                "side": s.side,
                "lat": s.lat,
                "lon": s.lon,
                "pools": [{"model": p.model, "count": p.count} for p in s.pools],
                "pue": s.pue,
                "price_cny_per_kwh": round(s.mean_price_cny_per_kwh, 6),
                "carbon_kg_per_kwh": s.carbon_kg_per_kwh,
            }
            for s in topo.sites
        ],
        "user_regions": [
            {"id": r.id, "lat": r.lat, "lon": r.lon, "demand_weight": r.demand_weight}
            for r in topo.regions
        ],
        "links": [
            {"a": x.a, "b": x.b, "rtt_ms": x.rtt_ms, "bandwidth_gbps": x.bandwidth_gbps}
            for x in topo.links
        ],
    }


@app.command()
def show(
    topology: TopologyOption = None,
    as_json: JsonOption = False,
    png: Annotated[
        Path | None, typer.Option("--png", help="also write a map picture (PNG) here")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Show sites and user regions as tables, JSON, YAML or a map picture."""
    fmt = output_format(output, as_json)
    as_json = fmt is OutputFormat.JSON
    topo = _load(topology)
    if png is not None:
        from topology.render import render_map

        try:
            render_map(topo, png)
        except OSError as exc:
            _fail(f"cannot write {png}: {exc.strerror or exc}")
        if fmt is None:
            echo(f"wrote {png}")
    if as_json:
        typer.echo(escaped_json(json.dumps(topology_json(topo), indent=2, ensure_ascii=False)))
    elif fmt is OutputFormat.YAML:
        emit_document(topology_json(topo), fmt)
    elif png is None:
        _print_tables(topo, fmt)


@app.command()
def route(
    from_: Annotated[str, typer.Option("--from", help="node id (site or user region)")],
    to: Annotated[str, typer.Option("--to", help="node id (site or user region)")],
    topology: TopologyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Min-RTT route and widest-path bottleneck between two nodes."""
    topo = _load(topology)
    try:
        rtt_ms = topo.rtt_ms(from_, to)
        bottleneck_gbps = topo.bottleneck_gbps(from_, to)
        path = topo.path(from_, to)
    except (UnknownNodeError, NoRouteError) as exc:
        _fail(str(exc))
    if as_json:
        doc = {
            "from": from_,
            "to": to,
            "rtt_ms": rtt_ms,
            "bottleneck_gbps": None if math.isinf(bottleneck_gbps) else bottleneck_gbps,
            "path": path,
        }
        typer.echo(json.dumps(doc))
        return
    echo(
        f"{from_} -> {to}: {rtt_ms:.1f} ms RTT via {' > '.join(path)}; "
        f"widest-path bottleneck {bottleneck_gbps:g} Gbps"
    )


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="topology YAML file")]) -> None:
    """Check a topology file; exit 0 if valid, 2 with one error per line otherwise."""
    try:
        topo = load_topology(file)
    except TopologyError as exc:
        for issue in exc.issues:
            echo(str(issue), err=True)
        raise typer.Exit(code=2) from None
    echo(
        f"{file}: ok: {len(topo.sites)} sites ({len(topo.east_sites)} east, "
        f"{len(topo.west_sites)} west), {len(topo.regions)} user regions, {len(topo.links)} links"
    )


@app.command()
def generate(
    sites: Annotated[int, typer.Option("--sites", min=1, help="sites in the federation")],
    seed: Annotated[int, typer.Option("--seed", help="same seed, same file")] = 1,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
) -> None:
    """Generate a federation of N sites around the built-in hubs (topology YAML)."""
    from topology.generate import generate_yaml

    try:
        text = generate_yaml(sites, seed)
    except ValueError as exc:
        _fail(str(exc))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"wrote {output}: {sites} sites (seed {seed})", err=True)


def sites_grid(topo: Topology) -> Grid:
    """The topology's sites: id, side and accelerators always (the accelerators wrap last),
    the rest as the width allows."""
    grid = Grid(
        [
            Column("id"),
            Column("province", drop=3),
            Column("side"),
            Column("kind", drop=4),
            Column("CNY/kWh (mean)", "right", drop=1),
            Column("kgCO2/kWh (eff.)", "right", drop=2),
            Column("PUE", "right", drop=5),
            Column("accelerators", prose=True),
        ],
        title=f"Sites ({len(topo.sites)})",
    )
    for s in topo.sites:
        grid.add(
            s.id, s.province, s.side, s.kind, f"{s.mean_price_cny_per_kwh:.3f}",
            f"{s.effective_carbon_kg_per_kwh:.3f}", f"{s.pue:.2f}",
            ", ".join(f"{p.count}×{p.model}" for p in s.pools) or "-",
        )  # fmt: skip
    return grid


def regions_grid(topo: Topology) -> Grid:
    """The user regions with their nearest site; name and coordinates as the width allows."""
    grid = Grid(
        [
            Column("id"),
            Column("name", drop=1),
            Column("lat", "right", drop=3),
            Column("lon", "right", drop=3),
            Column("demand weight", "right", drop=2),
            Column("nearest site (RTT ms)"),
        ],
        title=f"User regions ({len(topo.regions)})",
    )
    for r in topo.regions:
        nearest = topo.nearest_sites(r.id, 1)
        near = f"{nearest[0][0]} ({nearest[0][1]:g})" if nearest else "-"
        grid.add(r.id, r.name, f"{r.lat:.2f}", f"{r.lon:.2f}", f"{r.demand_weight:.3f}", near)
    return grid


def _print_tables(topo: Topology, fmt: OutputFormat | None) -> None:
    console = Console(highlight=False, soft_wrap=False)
    print_grid(sites_grid(topo), fmt, console)
    print_grid(regions_grid(topo), fmt, console)

"""`computenet cluster`: the broker replicas sharing the federation's database and their leader."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import typer

from computenet.cli.common import BrokerOption, JsonOption, TimeoutOption, age, connect, console
from computenet.cli.safe_text import cell, echo
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
from computenet.types import ClusterStatus

app = typer.Typer(help="Show the broker replicas and which one leads.")

_ROLE_STYLE = {"leader": "bold green", "follower": ""}


def cluster_dict(status: ClusterStatus) -> dict[str, Any]:
    """The JSON shape of `cluster status --json`."""
    leader = status.leader
    return {
        "leader": None
        if leader is None
        else {
            "broker_id": leader.broker_id,
            "address": leader.address,
            "agent_address": leader.agent_address,
            "epoch": leader.epoch,
            "since_unix_ms": leader.since_unix_ms,
        },
        "replicas": [
            {
                "broker_id": r.broker_id,
                "address": r.address,
                "role": r.role,
                "last_seen_unix_ms": r.last_seen_unix_ms,
                "agent_address": r.agent_address,
            }
            for r in status.replicas
        ],
    }


def _when(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def leader_line(status: ClusterStatus, now_unix_ms: int) -> str:
    """One line naming the leader, its epoch and since when; or saying there is none."""
    leader = status.leader
    if leader is None:
        return "leader: none (no replica holds the leadership now)"
    agents = f", agents {leader.agent_address}" if leader.agent_address else ""
    since = (
        f"{_when(leader.since_unix_ms)} ({age(leader.since_unix_ms, now_unix_ms)} ago)"
        if leader.since_unix_ms > 0
        else "unknown"
    )
    return (
        f"leader: {leader.broker_id} at {leader.address}{agents}, "
        f"epoch {leader.epoch}, since {since}"
    )


def replicas_table(status: ClusterStatus, now_unix_ms: int) -> Grid:
    """Each replica with its role, how long ago it last renewed its record and its addresses
    (the agent address as the width allows)."""
    grid = Grid(
        [
            Column("replica"),
            Column("role"),
            Column("last seen"),
            Column("address"),
            Column("agent address", drop=1),
        ]
    )
    for r in status.replicas:
        seen = age(r.last_seen_unix_ms, now_unix_ms)
        grid.add(
            r.broker_id, cell(r.role, _ROLE_STYLE.get(r.role, "yellow")),
            seen if seen == "never" else f"{seen} ago", r.address, r.agent_address or "-",
        )  # fmt: skip
    return grid


@app.command("status")
def cluster_status(
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """The leader (id, addresses, epoch, since when) and every replica's role and last sign of
    life; any replica answers."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        status = client.cluster_status()
    if is_document(fmt):
        emit_document(cluster_dict(status), fmt)
        return
    now = int(time.time() * 1000)
    echo(leader_line(status, now))
    print_grid(replicas_table(status, now), fmt, console())

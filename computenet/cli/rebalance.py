"""`computenet rebalance`: plan, apply and review the federation's rebalancing runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from computenet.cli.common import (
    BrokerOption,
    JsonOption,
    TimeoutOption,
    connect,
    console,
)
from computenet.cli.safe_text import cell, echo
from computenet.cli.tables import (
    Column,
    Grid,
    OutputFormat,
    OutputOption,
    emit_document,
    is_document,
    output_format,
    print_grid,
)
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S
from computenet.rebalance_types import RebalanceRunInfo

app = typer.Typer(help="Plan, apply and review rebalancing runs (operators).")

BudgetOption = Annotated[
    int, typer.Option("--budget", help="Maximum moves (0: the broker's budget).", min=0)
]


def moves_table(run: RebalanceRunInfo) -> Grid:
    """The moves of a run with their savings, cost and outcome (an error wraps last)."""
    grid = Grid(
        [
            Column("job"),
            Column("kind", drop=3),
            Column("from"),
            Column("to"),
            Column("savings CNY", "right", drop=2),
            Column("cost CNY", "right", drop=2),
            Column("net CNY", "right"),
            Column("CO2 kg", "right", drop=1),
            Column("outcome", prose=True),
        ]
    )
    for m in run.moves:
        outcome = cell("applied") if m.applied else cell(m.error or "", "red")
        grid.add(
            m.job_id, m.kind.value, m.from_site or "-", m.to_site, f"{m.savings_cny:,.0f}",
            f"{m.cost_cny:,.0f}", f"{m.net_cny:,.0f}", f"{m.savings_carbon_kg:,.1f}", outcome,
        )  # fmt: skip
    return grid


def _when(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def show_run(run: RebalanceRunInfo, fmt: OutputFormat | None) -> None:
    """Print one run as a document or as a summary and its moves."""
    if is_document(fmt):
        emit_document(run.to_dict(), fmt)
        return
    kind = "dry run" if run.dry_run else "run"
    echo(
        f"{kind} {run.run_id} ({run.trigger}): {len(run.moves)} moves planned, "
        f"{run.applied_moves} applied, expected net savings {run.expected_savings_cny:,.0f} CNY"
    )
    if run.moves:
        print_grid(moves_table(run), fmt, console())
    for error in run.errors:
        echo(f"error: {error}", err=True)


@app.command("plan")
def plan(
    budget: BudgetOption = 0,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = 30.0,
) -> None:
    """Show the moves a rebalancing run would make now, without applying them."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        run = client.plan_rebalance(move_budget=budget)
    show_run(run, fmt)


@app.command("apply")
def apply(
    budget: BudgetOption = 0,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = 60.0,
) -> None:
    """Plan and apply a rebalancing run now."""
    fmt = output_format(output, as_json)
    with connect(broker, timeout_s) as client:
        run = client.apply_rebalance(move_budget=budget)
    show_run(run, fmt)


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", help="Runs to show.", min=1)] = 20,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Past rebalancing runs, newest first."""
    fmt = output_format(output, as_json)
    runs: list[RebalanceRunInfo] = []
    token = ""
    with connect(broker, timeout_s) as client:
        while len(runs) < limit:
            page = client.rebalance_runs(page_size=min(100, limit - len(runs)), page_token=token)
            runs.extend(page.runs)
            token = page.next_page_token
            if not token:
                break
    if is_document(fmt):
        emit_document([r.to_dict() for r in runs], fmt)
        return
    print_grid(runs_table(runs), fmt, console())


def runs_table(runs: list[RebalanceRunInfo]) -> Grid:
    """Past runs: id, when, what they planned and applied; trigger and duration as room allows."""
    grid = Grid(
        [
            Column("run"),
            Column("trigger", drop=2),
            Column("started"),
            Column("took", "right", drop=1),
            Column("planned", "right"),
            Column("applied", "right"),
            Column("expected CNY", "right", drop=3),
            Column("errors", "right"),
        ]
    )
    for r in runs:
        grid.add(
            r.run_id + (" (dry)" if r.dry_run else ""), r.trigger, _when(r.started_unix_ms),
            f"{(r.ended_unix_ms - r.started_unix_ms) / 1000:.1f}s", len(r.moves),
            r.applied_moves, f"{r.expected_savings_cny:,.0f}", len(r.errors),
        )  # fmt: skip
    return grid

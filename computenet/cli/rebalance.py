"""`computenet rebalance`: plan, apply and review the federation's rebalancing runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from computenet.cli.common import (
    BrokerOption,
    JsonOption,
    TimeoutOption,
    connect,
    console,
)
from computenet.cli.safe_text import cell, echo, emit_json
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S
from computenet.rebalance_types import RebalanceRunInfo

app = typer.Typer(help="Plan, apply and review rebalancing runs (operators).")

BudgetOption = Annotated[
    int, typer.Option("--budget", help="Maximum moves (0: the broker's budget).", min=0)
]


def moves_table(run: RebalanceRunInfo) -> Table:
    """The moves of a run with their savings, cost and outcome."""
    table = Table("job", "kind", "from", "to", "savings CNY", "cost CNY", "net CNY", "CO2 kg", "")
    for m in run.moves:
        outcome = cell("applied") if m.applied else cell(m.error or "", "red")
        table.add_row(
            cell(m.job_id), cell(m.kind.value), cell(m.from_site or "-"), cell(m.to_site),
            cell(f"{m.savings_cny:,.0f}"), cell(f"{m.cost_cny:,.0f}"), cell(f"{m.net_cny:,.0f}"),
            cell(f"{m.savings_carbon_kg:,.1f}"), outcome,
        )  # fmt: skip
    return table


def _when(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def show_run(run: RebalanceRunInfo, as_json: bool) -> None:
    """Print one run as JSON or as a summary and its moves."""
    if as_json:
        emit_json(run.to_dict())
        return
    kind = "dry run" if run.dry_run else "run"
    echo(
        f"{kind} {run.run_id} ({run.trigger}): {len(run.moves)} moves planned, "
        f"{run.applied_moves} applied, expected net savings {run.expected_savings_cny:,.0f} CNY"
    )
    if run.moves:
        console().print(moves_table(run))
    for error in run.errors:
        echo(f"error: {error}", err=True)


@app.command("plan")
def plan(
    budget: BudgetOption = 0,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = 30.0,
) -> None:
    """Show the moves a rebalancing run would make now, without applying them."""
    with connect(broker, timeout_s) as client:
        run = client.plan_rebalance(move_budget=budget)
    show_run(run, as_json)


@app.command("apply")
def apply(
    budget: BudgetOption = 0,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = 60.0,
) -> None:
    """Plan and apply a rebalancing run now."""
    with connect(broker, timeout_s) as client:
        run = client.apply_rebalance(move_budget=budget)
    show_run(run, as_json)


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", help="Runs to show.", min=1)] = 20,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Past rebalancing runs, newest first."""
    runs: list[RebalanceRunInfo] = []
    token = ""
    with connect(broker, timeout_s) as client:
        while len(runs) < limit:
            page = client.rebalance_runs(page_size=min(100, limit - len(runs)), page_token=token)
            runs.extend(page.runs)
            token = page.next_page_token
            if not token:
                break
    if as_json:
        emit_json([r.to_dict() for r in runs])
        return
    table = Table(
        "run", "trigger", "started", "took", "planned", "applied", "expected CNY", "errors"
    )
    for r in runs:
        row = (
            r.run_id + (" (dry)" if r.dry_run else ""), r.trigger, _when(r.started_unix_ms),
            f"{(r.ended_unix_ms - r.started_unix_ms) / 1000:.1f}s", len(r.moves),
            r.applied_moves, f"{r.expected_savings_cny:,.0f}", len(r.errors),
        )  # fmt: skip
        table.add_row(*map(cell, row))
    console().print(table)

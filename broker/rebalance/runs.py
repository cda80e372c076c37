"""Run records of rebalancing: built from planned moves, and read back as move history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from broker.rebalance.model import LastMove, Move
from broker.store import RunRecords
from computenet.rebalance_types import RebalanceMove, RebalanceRunInfo

HISTORY_PAGE_RUNS = 50
"""Runs read per page while collecting move history."""


def new_run_id(started_unix_ms: int) -> str:
    """A unique run id that sorts by start time."""
    return f"{started_unix_ms:013d}-{uuid.uuid4().hex[:12]}"


def move_record(move: Move, *, applied: bool = False, error: str = "") -> RebalanceMove:
    """The record of a planned move: applied, or the error that stopped it (if any)."""
    return RebalanceMove(
        job_id=move.job_id,
        kind=move.kind,
        from_site=move.from_site or "",
        to_site=move.to_site,
        savings_cny=move.savings_cny,
        savings_carbon_kg=move.savings_carbon_kg,
        cost_cny=move.cost_cny,
        reason=move.reason,
        applied=applied,
        error=error,
    )


def recent_moves(records: RunRecords, runs: int) -> dict[str, LastMove]:
    """Each job's latest applied move within the last `runs` applied runs (anti-flapping)."""
    applied: list[RebalanceRunInfo] = []
    before: str | None = None
    while len(applied) < runs:
        page = records.list_runs(limit=HISTORY_PAGE_RUNS, before=before)
        if not page:
            break
        applied.extend(r for r in page if not r.dry_run)
        before = page[-1].run_id
    return last_moves(applied[:runs])


def last_moves(runs: Sequence[RebalanceRunInfo]) -> dict[str, LastMove]:
    """Each job's latest applied move in `runs` (newest first), aged by its run's position."""
    out: dict[str, LastMove] = {}
    for age, run in enumerate(runs):  # newest first, so the first sighting of a job wins
        for move in run.moves:
            if move.applied and move.job_id not in out:
                out[move.job_id] = LastMove(
                    move.job_id,
                    move.from_site or None,
                    move.to_site,
                    run.started_unix_ms / 1000.0,
                    age,
                )
    return out

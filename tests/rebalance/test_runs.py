"""Rebalance run records: saved, replaced, paged newest first, and read back as move history."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from broker.rebalance import Move, MoveKind
from broker.rebalance.runs import MoveOutcome, RebalanceRun, RunStore, new_run_id


def _run(
    started_ms: int, *, dry: bool = False, job: str = "j1", applied: bool = True
) -> RebalanceRun:
    move = Move(
        job, MoveKind.MIGRATE, "zhangjiakou", "horinger", 900.0, 1200.5, 300.0, "cheaper", "a800"
    )
    return RebalanceRun(
        run_id=new_run_id(started_ms),
        trigger="interval",
        dry_run=dry,
        started_unix_ms=started_ms,
        ended_unix_ms=started_ms + 40,
        moves=(MoveOutcome(move, applied=applied, error="" if applied else "site refused"),),
        expected_savings_cny=900.0,
        errors=() if applied else ("site refused",),
    )


def test_runs_round_trip_and_page_newest_first(tmp_path: Path) -> None:
    store = RunStore(sa.create_engine(f"sqlite:///{tmp_path / 'runs.db'}"))
    runs = [_run(1_000 + k) for k in range(5)]
    for run in runs:
        store.save_run(run)
    first = store.list_runs(limit=2)
    assert first == [runs[4], runs[3]]
    second = store.list_runs(limit=2, before=first[-1].run_id)
    assert second == [runs[2], runs[1]]
    assert store.list_runs(limit=2, before=second[-1].run_id) == [runs[0]]


def test_saving_again_replaces_the_run(tmp_path: Path) -> None:
    store = RunStore(sa.create_engine(f"sqlite:///{tmp_path / 'runs.db'}"))
    run = _run(5_000)
    store.save_run(run)
    realised = replace(run, realised_savings_cny=850.0)
    store.save_run(realised)
    assert store.list_runs() == [realised]


def test_recent_moves_skip_dry_runs_and_failed_moves(tmp_path: Path) -> None:
    store = RunStore(sa.create_engine(f"sqlite:///{tmp_path / 'runs.db'}"))
    store.save_run(_run(1_000, job="old"))
    store.save_run(_run(2_000, job="dry", dry=True))
    store.save_run(_run(3_000, job="failed", applied=False))
    store.save_run(_run(4_000, job="new"))
    history = store.recent_moves(runs=10)
    assert set(history) == {"old", "new"}
    assert history["new"].runs_ago == 0 and history["old"].runs_ago == 2
    assert history["new"].at_unix_s == 4.0
    assert set(store.recent_moves(runs=1)) == {"new"}

"""Run records of rebalancing: built from planned moves, and read back as move history."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.rebalance import Move, MoveKind
from broker.rebalance.runs import move_record, new_run_id, recent_moves
from broker.store import RunRecords, open_rebalance_store
from computenet.rebalance_types import RebalanceMove, RebalanceRunInfo


@pytest.fixture
def records() -> Iterator[RunRecords]:
    with open_rebalance_store("sqlite://") as store:
        yield store.runs


def _move(job: str, from_site: str | None = "zhangjiakou") -> Move:
    return Move(job, MoveKind.MIGRATE, from_site, "horinger", 900.0, 1200.5, 300.0, "cheaper")


def _run(started_ms: int, *, dry: bool = False, job: str = "j1", applied: bool = True):
    return RebalanceRunInfo(
        run_id=new_run_id(started_ms),
        trigger="interval",
        dry_run=dry,
        started_unix_ms=started_ms,
        ended_unix_ms=started_ms + 40,
        moves=(move_record(_move(job), applied=applied, error="" if applied else "refused"),),
    )


def test_a_move_record_keeps_the_plan_and_its_outcome() -> None:
    record = move_record(_move("j1", from_site=None), error="site refused")
    assert record == RebalanceMove(
        "j1",
        MoveKind.MIGRATE,
        "",
        "horinger",
        900.0,
        1200.5,
        300.0,
        "cheaper",
        False,
        "site refused",
    )
    assert record.net_cny == _move("j1").net_cny


def test_run_ids_sort_by_start_time() -> None:
    ids = [new_run_id(ms) for ms in (999, 1_000, 20_000)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_recent_moves_skip_dry_runs_and_failed_moves(records: RunRecords) -> None:
    records.save_run(_run(1_000, job="old"))
    records.save_run(_run(2_000, job="dry", dry=True))
    records.save_run(_run(3_000, job="failed", applied=False))
    records.save_run(_run(4_000, job="new"))
    history = recent_moves(records, runs=10)
    assert set(history) == {"old", "new"}
    assert history["new"].runs_ago == 0 and history["old"].runs_ago == 2
    assert history["new"].at_unix_s == 4.0
    assert history["new"].from_site == "zhangjiakou"
    assert set(recent_moves(records, runs=1)) == {"new"}


def test_recent_moves_page_through_long_histories(records: RunRecords) -> None:
    for k in range(120):
        records.save_run(_run(1_000 + k, job=f"j{k}", dry=k % 2 == 1))
    history = recent_moves(records, runs=55)
    assert len(history) == 55 and history["j118"].runs_ago == 0
    assert "j10" in history and "j8" not in history

"""A run end to end on SQLite: lease, plan, ordered steps under the token, run record, dry runs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from broker.placement import Policy
from broker.rebalance import Action, ActiveJob, LastMove, RebalanceConfig, RebalanceInput, Step
from broker.rebalance.runner import LEASE_LOST, RebalanceRunner, RunnerSettings
from broker.store import open_rebalance_store
from computenet.types import SiteStatus
from tests.rebalance.factories import POLICY, at_cst, snapshot, training


def _state(history: Mapping[str, LastMove]) -> RebalanceInput:
    snap = snapshot(at_cst(12.0), status={"wuhu": SiteStatus.DRAINING})
    jobs = [
        ActiveJob(f"j{k}", training(40.0, accelerator="910b", cards=64), "wuhu", elapsed_h=2.0)
        for k in range(2)
    ]
    return RebalanceInput(snap, jobs, history=history, policy=Policy.default(POLICY))


def _runner(tmp_path: Path, steps: list[tuple[Step, int]], holder: str = "a") -> RebalanceRunner:
    store = open_rebalance_store(f"sqlite:///{tmp_path / 'broker.db'}")

    def apply_step(step: Step, token: int) -> None:
        if step.job_id == "j1" and step.action == Action.DISPATCH:
            raise RuntimeError("site refused the dispatch")
        steps.append((step, token))

    return RebalanceRunner(
        config=RebalanceConfig(),
        settings=RunnerSettings(holder=holder),
        lease=store.lease,
        runs=store.runs,
        load_input=_state,
        apply_step=apply_step,
    )


def test_a_run_applies_steps_in_order_and_records_outcomes(tmp_path: Path) -> None:
    steps: list[tuple[Step, int]] = []
    run = _runner(tmp_path, steps).run("interval")
    assert run is not None
    assert [o.applied for o in run.moves] == [True, False]
    assert run.moves[1].error == "site refused the dispatch"
    assert [s.action for s, _ in steps if s.job_id == "j0"] == [
        Action.MARK_MIGRATING,
        Action.CHECKPOINT_AND_STOP,
        Action.DISPATCH,
    ]
    assert {token for _, token in steps} == {1}
    with open_rebalance_store(f"sqlite:///{tmp_path / 'broker.db'}") as again:
        assert again.runs.list_runs() == [run]


def test_a_replica_without_the_lease_does_not_run_but_may_dry_run(tmp_path: Path) -> None:
    assert _runner(tmp_path, [], holder="a").run("interval") is not None
    steps: list[tuple[Step, int]] = []
    other = _runner(tmp_path, steps, holder="b")
    assert other.run("interval") is None
    dry = other.run("manual", dry_run=True)
    assert dry is not None and dry.dry_run and steps == []
    assert all(not o.applied for o in dry.moves)


def test_losing_the_lease_mid_run_stops_the_remaining_moves(tmp_path: Path) -> None:
    steps: list[tuple[Step, int]] = []
    runner = _runner(tmp_path, steps)
    real_check = runner.lease.check
    calls = [0]

    def check_then_lose(token: int, **kwargs: object) -> bool:
        calls[0] += 1
        return calls[0] == 1 and real_check(token)

    runner.lease.check = check_then_lose  # type: ignore[method-assign]
    run = runner.run("interval")
    assert run is not None
    assert [o.error for o in run.moves] == ["", LEASE_LOST]
    assert LEASE_LOST in run.errors

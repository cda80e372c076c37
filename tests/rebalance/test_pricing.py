"""A move priced as the broker carries it out: redone work, the checkpoint's transfer, restarts."""

from __future__ import annotations

import pytest

from broker.placement import Policy
from broker.rebalance import ActiveJob, MoveKind, RebalanceConfig, RebalanceInput, plan_moves
from broker.rebalance.apply import Action, plan_steps
from broker.rebalance.pricing import MoveTime, move_time
from computenet.types import SiteStatus
from tests.rebalance.factories import POLICY, at_cst, inference, snapshot, training
from topology import default_topology

RESTART_H = 0.25
CONFIG = RebalanceConfig(
    min_gain_fraction=0.15,
    min_gain_cny=50.0,
    restart_overhead_h=RESTART_H,
    evacuate_uncheckpointable_on_drain=True,
)
CARD_HOUR_CNY = POLICY.accelerator_hour_value_cny
SOURCE, TARGET = "zhangjiakou", "horinger"
TOPOLOGY = default_topology()
CKPT_H = TOPOLOGY.transfer_hours(SOURCE, TARGET, 200.0)


@pytest.mark.parametrize(
    ("job", "lost", "expect"),
    [
        # stopped with a checkpoint: nothing redone, the checkpoint crosses the path
        (
            ActiveJob("a", training(30.0), SOURCE, elapsed_h=6.0),
            False,
            MoveTime(0.0, 200.0, CKPT_H, CKPT_H + RESTART_H),
        ),
        # not started: nothing to checkpoint or redo
        (ActiveJob("b", training(30.0), SOURCE), False, MoveTime(0.0, 0.0, 0.0, RESTART_H)),
        # stopped without a checkpoint: everything since the start again
        (
            ActiveJob("c", training(30.0, checkpoint_gb=None), SOURCE, elapsed_h=6.0),
            False,
            MoveTime(6.0, 0.0, 0.0, RESTART_H),
        ),
        # a service loses nothing by restarting
        (
            ActiveJob("d", inference({"beijing": 1.0}), SOURCE, elapsed_h=6.0),
            False,
            MoveTime(0.0, 0.0, 0.0, RESTART_H),
        ),
        # a lost site takes no checkpoint: the current attempt's run is redone
        (
            ActiveJob("e", training(30.0), SOURCE, elapsed_h=6.0),
            True,
            MoveTime(6.0, 0.0, 0.0, RESTART_H),
        ),
    ],
    ids=["checkpoint", "not started", "no checkpoint", "service", "source lost"],
)
def test_move_time(job: ActiveJob, lost: bool, expect: MoveTime) -> None:
    got = move_time(job, TARGET, TOPOLOGY, restart_overhead_h=RESTART_H, source_lost=lost)
    assert got == expect


def _evacuated(job: ActiveJob, status: SiteStatus) -> float:
    snap = snapshot(at_cst(3.0), status={SOURCE: status})
    state = RebalanceInput(snapshot=snap, active=[job], policy=Policy.default(POLICY))
    [move] = plan_moves(state, CONFIG)
    assert (move.kind, move.from_site) == (MoveKind.EVACUATE, SOURCE)
    return move.cost_cny


def test_evacuating_a_lost_site_costs_the_current_attempts_run_and_no_transfer() -> None:
    job = ActiveJob("lost", training(30.0, cards=64), SOURCE, elapsed_h=6.0)
    cost = _evacuated(job, SiteStatus.LOST)
    assert cost == pytest.approx((RESTART_H + 6.0) * 64 * CARD_HOUR_CNY, abs=0.01)


def test_a_move_without_checkpoint_costs_its_run_so_far() -> None:
    job = ActiveJob("nock", training(30.0, cards=64, checkpoint_gb=None), SOURCE, elapsed_h=6.0)
    cost = _evacuated(job, SiteStatus.DRAINING)
    assert cost == pytest.approx((RESTART_H + 6.0) * 64 * CARD_HOUR_CNY, abs=0.01)


def test_a_move_with_checkpoint_costs_the_transfer_and_the_restart_only() -> None:
    job = ActiveJob("ck", training(30.0, cards=64), SOURCE, elapsed_h=6.0)
    snap = snapshot(at_cst(3.0), status={SOURCE: SiteStatus.DRAINING})
    state = RebalanceInput(snapshot=snap, active=[job], policy=Policy.default(POLICY))
    [move] = plan_moves(state, CONFIG)
    idle_h = TOPOLOGY.transfer_hours(SOURCE, move.to_site, 200.0) + RESTART_H
    fees = TOPOLOGY.transfer_cost_cny(SOURCE, move.to_site, 200.0)
    assert move.cost_cny == pytest.approx(idle_h * 64 * CARD_HOUR_CNY + fees, abs=0.01)
    assert idle_h > RESTART_H, "the checkpoint takes time to cross"


def test_the_longer_a_job_without_checkpoint_ran_the_more_its_move_costs() -> None:
    costs = [
        _evacuated(
            ActiveJob("n", training(30.0, cards=64, checkpoint_gb=None), SOURCE, elapsed_h=h),
            SiteStatus.DRAINING,
        )
        for h in (1.0, 5.0)
    ]
    assert costs[1] - costs[0] == pytest.approx(4.0 * 64 * CARD_HOUR_CNY, abs=0.01)


@pytest.mark.parametrize(
    ("sites", "with_checkpoint"),
    [
        (None, True),
        (frozenset({SOURCE, TARGET}), True),
        (frozenset({TARGET}), False),
        (frozenset({SOURCE}), False),
        (frozenset(), False),
    ],
    ids=["every site", "both sites", "source cannot", "target cannot", "neither"],
)
def test_a_checkpoint_moves_only_between_sites_that_both_move_checkpoints(
    sites: frozenset[str] | None, with_checkpoint: bool
) -> None:
    job = ActiveJob("a", training(30.0), SOURCE, elapsed_h=6.0)
    got = move_time(job, TARGET, TOPOLOGY, restart_overhead_h=RESTART_H, checkpoint_sites=sites)
    restart = MoveTime(6.0, 0.0, 0.0, RESTART_H)
    carried = MoveTime(0.0, 200.0, CKPT_H, CKPT_H + RESTART_H)
    assert got == (carried if with_checkpoint else restart)


def test_evacuating_from_a_site_without_checkpoints_costs_the_run_so_far() -> None:
    job = ActiveJob("ck", training(30.0, cards=64), SOURCE, elapsed_h=6.0)
    snap = snapshot(at_cst(3.0), status={SOURCE: SiteStatus.DRAINING})
    others = frozenset(snap.sites) - {SOURCE}
    state = RebalanceInput(
        snapshot=snap, active=[job], policy=Policy.default(POLICY), checkpoint_sites=others
    )
    [move] = plan_moves(state, CONFIG)
    assert move.cost_cny == pytest.approx((RESTART_H + 6.0) * 64 * CARD_HOUR_CNY, abs=0.01)


@pytest.mark.parametrize(
    ("sites", "stop"), [(None, Action.CHECKPOINT_AND_STOP), (set(), Action.STOP)]
)
def test_the_steps_of_a_move_checkpoint_only_where_it_was_priced_with_one(
    sites: set[str] | None, stop: Action
) -> None:
    job = ActiveJob("ck", training(30.0, cards=64), SOURCE, elapsed_h=6.0)
    snap = snapshot(at_cst(3.0), status={SOURCE: SiteStatus.DRAINING})
    state = RebalanceInput(
        snapshot=snap, active=[job], policy=Policy.default(POLICY), checkpoint_sites=sites
    )
    steps = plan_steps(plan_moves(state, CONFIG), state, "r1")
    assert [s.action for s in steps] == [Action.MARK_MIGRATING, stop, Action.DISPATCH]

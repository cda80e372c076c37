"""The rebalancing planner fits jobs as whole nodes of pools whose node shape is known."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.placement import Policy
from broker.rebalance import (
    MoveKind,
    PendingJob,
    RebalanceConfig,
    RebalanceInput,
    plan_moves,
)
from broker.rebalance.apply import project
from tests.rebalance.factories import POLICY, at_cst, snapshot, training

CONFIG = RebalanceConfig(min_gain_fraction=0.15, min_gain_cny=50.0, restart_overhead_h=0.25)
SITE = "horinger"


def _input(shaped: bool) -> RebalanceInput:
    """horinger alone has 320 a800 free: five whole nodes of 64 cards if `shaped`."""
    free = {SITE: {"a800": 320}, "zhongwei": {}, "guian": {}, "qingyang": {}}
    snap = snapshot(at_cst(1.0), fraction_free=0.0, free=free)
    site = replace(snap.sites[SITE], cpu_free=1e6, memory_gb_free=1e7)
    if shaped:
        site = replace(site, cards_per_node={"a800": 64}, nodes={"a800": 8})
    snap = replace(snap, sites={**snap.sites, SITE: site})
    pending = [PendingJob(f"p{k}", training(24.0, cards=100, priority=k)) for k in range(3)]
    return RebalanceInput(snapshot=snap, policy=Policy.default(POLICY), pending=tuple(pending))


@pytest.mark.parametrize(("shaped", "placed"), [(False, 3), (True, 2)])
def test_pending_jobs_are_placed_on_whole_free_nodes(shaped: bool, placed: int) -> None:
    """Three 100-card jobs fit in 320 cards, but only two fit in five 64-card nodes."""
    moves = plan_moves(_input(shaped), CONFIG)
    assert [(m.kind, m.to_site) for m in moves] == [(MoveKind.PLACE, SITE)] * placed


def test_projected_capacity_takes_whole_nodes_and_keeps_the_shape() -> None:
    state = _input(shaped=True)
    moves = plan_moves(state, CONFIG)
    after = project(state, moves).snapshot.sites[SITE]
    assert after.free == {"a800": 320 - 2 * 128}
    assert after.cards_per_node == {"a800": 64}
    assert after.whole_nodes == {"a800": 5 - 2 * 2}  # each 100-card job takes two whole nodes


def test_one_node_jobs_take_their_cards_and_may_spoil_a_node_each() -> None:
    """Eight 16-card jobs share 64-card nodes: their cards, not whole nodes, leave the pool."""
    state = _input(shaped=True)
    pending = [PendingJob(f"q{k}", training(24.0, cards=16, priority=k)) for k in range(8)]
    state = replace(state, pending=tuple(pending))
    moves = plan_moves(state, CONFIG)
    assert len(moves) == 8
    after = project(state, moves).snapshot.sites[SITE]
    assert after.free == {"a800": 320 - 8 * 16}
    assert after.whole_nodes == {"a800": 5 - 8}  # each may sit alone on a node: none surely free

"""Rebalancing runs: the pure planner and its inputs and moves (I/O adapters live in submodules)."""

from broker.rebalance.apply import Action, Step, plan_steps, project
from broker.rebalance.config import RebalanceConfig
from broker.rebalance.model import ActiveJob, LastMove, Move, MoveKind, PendingJob, RebalanceInput
from broker.rebalance.planner import plan_moves

__all__ = [
    "Action",
    "ActiveJob",
    "LastMove",
    "Move",
    "MoveKind",
    "PendingJob",
    "RebalanceConfig",
    "RebalanceInput",
    "Step",
    "plan_moves",
    "plan_steps",
    "project",
]

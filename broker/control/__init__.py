"""The broker's control plane core: one owner of job state and one set of capacity rules.

Pure: no I/O, no grpc, no SQL. The shells (placement loop, tracker, live rebalancing,
servicers) turn what happens into stimuli, ask `JobMachine.handle` what follows, and carry
out the effects it returns.
"""

from broker.control.effects import Dispatch, Effect, PlaceAtTarget, Stop, Write
from broker.control.machine import (
    LAUNCH_FAILED,
    LOST_BEFORE_START,
    MIGRATION_FELL_BACK,
    SUPERSEDED,
    JobMachine,
)
from broker.control.reconcile import Resumption
from broker.control.retry import RetryPolicy
from broker.control.stimuli import (
    Allocation,
    AttemptReported,
    AttemptsListed,
    CancelRequested,
    DispatchAcknowledged,
    MigrationAbandoned,
    MigrationBegun,
    MigrationSourceGone,
    MigrationStop,
    MigrationTargetUnavailable,
    Placed,
    PoolShare,
    Preempt,
    SiteLost,
    SiteSuspect,
    Stimulus,
)

__all__ = [
    "LAUNCH_FAILED",
    "LOST_BEFORE_START",
    "MIGRATION_FELL_BACK",
    "SUPERSEDED",
    "Allocation",
    "AttemptReported",
    "AttemptsListed",
    "CancelRequested",
    "Dispatch",
    "DispatchAcknowledged",
    "Effect",
    "JobMachine",
    "MigrationAbandoned",
    "MigrationBegun",
    "MigrationSourceGone",
    "MigrationStop",
    "MigrationTargetUnavailable",
    "PlaceAtTarget",
    "Placed",
    "PoolShare",
    "Preempt",
    "Resumption",
    "RetryPolicy",
    "SiteLost",
    "SiteSuspect",
    "Stimulus",
    "Stop",
    "Write",
]

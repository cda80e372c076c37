"""One rebalancing run end to end: take the lease, plan, apply under the token, record."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from broker.rebalance.apply import Step, plan_steps
from broker.rebalance.config import RebalanceConfig
from broker.rebalance.model import LastMove, Move, RebalanceInput
from broker.rebalance.planner import plan_moves
from broker.rebalance.runs import move_record, new_run_id, recent_moves
from broker.store import Lease, RunRecords
from computenet.rebalance_types import RebalanceMove, RebalanceRunInfo

log = logging.getLogger(__name__)

LoadInput = Callable[[Mapping[str, LastMove]], RebalanceInput]
ApplyStep = Callable[[Step, int], None]
LEASE_LOST = "lease lost: another broker replica runs rebalancing now"


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """Who this replica is and how long its lease lasts."""

    holder: str
    lease_ttl_s: float = 120.0
    history_runs: int = 100


class RebalanceRunner:
    """Runs rebalancing under the lease; `run` is what the scheduler and the RPCs call.

    `load_input(history)` builds the run's input (snapshot, jobs, demand) with the given move
    history; `apply_step(step, token)` performs one step through the dispatch path and must
    make its writes fenced by `token` (`Fence(lease.name, token)` in `Store.apply`).
    """

    def __init__(
        self,
        *,
        config: RebalanceConfig,
        settings: RunnerSettings,
        lease: Lease,
        runs: RunRecords,
        load_input: LoadInput,
        apply_step: ApplyStep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = settings
        self.lease = lease
        self.runs = runs
        self._load_input = load_input
        self._apply_step = apply_step
        self._clock = clock
        self._lock = threading.Lock()

    def run(
        self, trigger: str, *, dry_run: bool = False, move_budget: int = 0
    ) -> RebalanceRunInfo | None:
        """Plan (and unless `dry_run`, apply) one run; None if another replica holds the lease."""
        with self._lock:
            token = None
            if not dry_run:
                token = self.lease.try_acquire(self.settings.holder, self.settings.lease_ttl_s)
                if token is None:
                    log.info("rebalance skipped trigger=%s: lease held elsewhere", trigger)
                    return None
            started = int(self._clock() * 1000)
            run_id = new_run_id(started)
            state = self._load_input(recent_moves(self.runs, self.settings.history_runs))
            config = self.config
            if move_budget > 0:
                config = config.model_copy(update={"max_moves_per_run": move_budget})
            moves = plan_moves(state, config)
            if token is None:
                records = tuple(move_record(m) for m in moves)
                errors: tuple[str, ...] = ()
            else:
                records, errors = self._apply(moves, plan_steps(moves, state, run_id), token)
            run = RebalanceRunInfo(
                run_id=run_id,
                trigger=trigger,
                dry_run=dry_run,
                started_unix_ms=started,
                ended_unix_ms=int(self._clock() * 1000),
                moves=records,
                expected_savings_cny=round(sum(m.net_cny for m in moves), 2),
                realised_savings_cny=round(sum(r.net_cny for r in records if r.applied), 2),
                errors=errors,
            )
            self.runs.save_run(run)
            log.info("rebalance run run_id=%s trigger=%s moves=%d", run_id, trigger, len(moves))
            return run

    def _apply(
        self, moves: list[Move], steps: list[Step], token: int
    ) -> tuple[tuple[RebalanceMove, ...], tuple[str, ...]]:
        """Apply each move in order; a failed move keeps its error, a lost lease stops the rest."""
        by_job: dict[str, list[Step]] = {}
        for step in steps:
            by_job.setdefault(step.job_id, []).append(step)
        records: list[RebalanceMove] = []
        errors: list[str] = []
        lost = False
        for move in moves:
            if not lost and not self.lease.check(token):
                lost = True
                errors.append(LEASE_LOST)
            if lost:
                records.append(move_record(move, error=LEASE_LOST))
                continue
            try:
                for step in by_job.get(move.job_id, []):
                    self._apply_step(step, token)
            except Exception as exc:  # one move failing must not stop the others
                log.warning("rebalance move failed job_id=%s error=%s", move.job_id, exc)
                errors.append(f"{move.job_id}: {exc}")
                records.append(move_record(move, error=str(exc)))
                continue
            records.append(move_record(move, applied=True))
        return tuple(records), tuple(errors)

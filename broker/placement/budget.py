"""How long a batch solve may run: seconds of wall clock, or a deterministic count of work.

The live broker must answer within its round, so by default every stage of `place_batch()`
stops at a wall-clock deadline. Replays and benchmarks that compare policies need the same
answer on a quiet and on a busy machine; with a work budget every stage counts the work it
does (simplex iterations, pairs priced, local-search moves, MILP nodes) and stops when the
count is spent, so the result depends only on the input. HiGHS then gets iteration and node
limits; its wall-clock limit stays, far out, only as a safety net.

Work units are weighted so that one unit costs about a microsecond on the machine they were
measured on (docs/placement.md, "Deterministic budget"); `SolveBudget.deterministic(1.0)`
asks for about what one second of wall clock buys there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy

# work units per step, each about its cost in microseconds on the measuring machine (a 2-core
# VM, profiled over the simulator's load-0.8 replay; docs/placement.md, "Deterministic budget")
UNITS_PER_SECOND = 1_000_000
SIMPLEX_ITERATION = 50.0  # one simplex iteration of a batch LP or re-match flow
HIGHS_RUN = 300.0  # setting up and reading back one HiGHS run
PRICING_ROUND = 500.0  # one column-generation round's bound and pricing, plus per pair:
PAIR_PRICED = 1.0
MOVE = 35.0  # one local-search move tried (relocate, insert, eject and re-insert)
COLUMN = 2.0  # one column built for a re-match flow or fixed in a diving round
MILP_NODE = 6_000.0  # one branch-and-bound node of a small MILP, building it included
# in work mode each HiGHS run may still take this many times the budget's seconds (at least
# _MIN_SAFETY_S) of HiGHS's own clock before it is stopped: a safety net, never reached normally
_SAFETY_FACTOR = 30.0
_MIN_SAFETY_S = 30.0
MIN_SOLVE_S = 0.01  # wall-clock mode: less than this left is not worth starting HiGHS


@dataclass(frozen=True, slots=True)
class SolveBudget:
    """What a batch solve may spend.

    `work` None: wall clock, `time_s` seconds (the live broker). `work` set: that many work
    units, counted by the solver, and `time_s` only scales HiGHS's safety-net time limit.
    """

    time_s: float = 2.0
    """Seconds of wall clock (the budget itself when `work` is None)."""
    work: int | None = None
    """Work units (about microseconds on the measuring machine); None for wall clock."""

    @classmethod
    def deterministic(cls, time_s: float) -> SolveBudget:
        """A work budget worth about `time_s` seconds on the measuring machine."""
        return cls(time_s=time_s, work=round(time_s * UNITS_PER_SECOND))

    def start(self) -> Deadline:
        """The deadline of a solve that starts now."""
        meter = _Meter(self)
        return Deadline(meter, meter.now() + (self.time_s if self.work is None else self.work))


class _Meter:
    """Where a solve stands: seconds on the wall clock, or work units spent."""

    def __init__(self, budget: SolveBudget) -> None:
        self.budget = budget
        self.counting = budget.work is not None
        self.spent = 0.0
        # per run, not from a start time: in work mode the process's clock must not matter
        self.safety_s = max(_MIN_SAFETY_S, _SAFETY_FACTOR * budget.time_s)

    def now(self) -> float:
        return self.spent if self.counting else time.perf_counter()


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on a solve's meter by which a stage must stop; stages share one meter."""

    meter: _Meter
    at: float

    @property
    def counting(self) -> bool:
        """True if work is counted rather than time (the result is then deterministic)."""
        return self.meter.counting

    def passed(self) -> bool:
        return self.meter.now() >= self.at

    def remaining(self) -> float:
        """Seconds or work units left."""
        return self.at - self.meter.now()

    def share(self, fraction: float) -> Deadline:
        """A deadline `fraction` of the way from now to this one."""
        now = self.meter.now()
        return Deadline(self.meter, now + (self.at - now) * fraction)

    @property
    def spent(self) -> float:
        """Work units counted so far (counted in wall-clock mode too, for measuring)."""
        return self.meter.spent

    def spend(self, units: float) -> None:
        """Count work done (in wall-clock mode only measured, never a limit)."""
        self.meter.spent += units

    def limit_highs(self, highs: highspy.Highs, *, min_s: float = MIN_SOLVE_S) -> bool:
        """Bound the next `highs.run()` by what is left; False if too little is left to start.

        In work mode the simplex iteration limit holds (deterministic); the wall-clock limit
        is only a safety net. HiGHS counts its time limit from the instance's first run.
        """
        left = self.remaining()
        if self.counting:
            iterations = math.floor(left / SIMPLEX_ITERATION)
            if iterations < 1:
                return False
            highs.setOptionValue("simplex_iteration_limit", iterations)
            highs.setOptionValue("time_limit", highs.getRunTime() + self.meter.safety_s)
            return True
        if left < min_s:
            return False
        highs.setOptionValue("time_limit", highs.getRunTime() + left)
        return True

    def spend_highs(self, highs: highspy.Highs) -> None:
        """Count the simplex iterations of the last run."""
        iterations = max(highs.getInfo().simplex_iteration_count, 0)
        self.spend(HIGHS_RUN + iterations * SIMPLEX_ITERATION)

    def milp_options(self) -> dict[str, float | int] | None:
        """scipy `milp` limits for what is left, or None if too little is left to start."""
        left = self.remaining()
        if self.counting:
            nodes = math.floor(left / MILP_NODE)
            if nodes < 1:
                return None
            return {"node_limit": nodes, "time_limit": self.meter.safety_s}
        if left < MIN_SOLVE_S:
            return None
        return {"time_limit": left}

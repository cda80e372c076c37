"""The failover benchmark's figures: per-kill phases from the observed times, and their summary.

Every time is wall-clock milliseconds on one machine. A phase is measured from the kill:
election (the new leader's term start), first agent back (its welcome from the new leader),
first placement and first dispatch (the first `placed` and `dispatched` job events the new
leader committed). The failover time is the last of these, the first dispatch.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

PHASES = ("elected", "first_agent_back", "all_agents_back", "first_placed", "first_dispatched")
TARGET_S = 10.0


@dataclass(frozen=True, slots=True)
class KillRecord:
    """What one SIGKILL of the leader led to (ms; None where it was not seen in time)."""

    killed: str
    new_leader: str
    epoch: int
    kill_ms: int
    elected_ms: int | None
    agents_back_ms: tuple[int | None, ...]
    """Per agent: its first welcome from the new leader after the kill."""
    first_placed_ms: int | None
    first_dispatched_ms: int | None

    def phases_s(self) -> dict[str, float | None]:
        """Seconds from the kill to each phase (None: not seen)."""
        back = self.agents_back_ms
        seen = [t for t in back if t is not None]
        times = {
            "elected": self.elected_ms,
            "first_agent_back": min(seen) if seen else None,
            "all_agents_back": max(seen) if seen and len(seen) == len(back) else None,
            "first_placed": self.first_placed_ms,
            "first_dispatched": self.first_dispatched_ms,
        }
        return {k: _since(self.kill_ms, v) for k, v in times.items()}

    def as_dict(self) -> dict[str, object]:
        phases = self.phases_s()
        return {
            "killed": self.killed,
            "new_leader": self.new_leader,
            "epoch": self.epoch,
            "failover_s": phases["first_dispatched"],
            "agents_back_s": [_since(self.kill_ms, t) for t in self.agents_back_ms],
            **{f"{k}_s": v for k, v in phases.items()},
        }


def _since(start_ms: int, at_ms: int | None) -> float | None:
    return None if at_ms is None else round((at_ms - start_ms) / 1000, 3)


def summarize(kills: list[KillRecord], target_s: float = TARGET_S) -> dict[str, object]:
    """Median and maximum of every phase over the kills, and whether failover met the target.

    A kill whose first dispatch was never seen counts as missing the target; the phase statistics
    are over the kills where the phase was seen (`n` says how many).
    """
    per_kill = [k.phases_s() for k in kills]
    phases: dict[str, dict[str, float | int | None]] = {}
    for name in PHASES:
        values = [p[name] for p in per_kill if p[name] is not None]
        seen = [v for v in values if v is not None]
        phases[name] = {
            "n": len(seen),
            "median_s": round(statistics.median(seen), 3) if seen else None,
            "max_s": round(max(seen), 3) if seen else None,
        }
    failovers = [p["first_dispatched"] for p in per_kill]
    complete = [f for f in failovers if f is not None]
    return {
        "kills": len(kills),
        "failover_median_s": phases["first_dispatched"]["median_s"],
        "failover_max_s": phases["first_dispatched"]["max_s"],
        "failovers_not_seen": len(failovers) - len(complete),
        "target_s": target_s,
        "target_met": bool(kills) and len(complete) == len(kills) and max(complete) <= target_s,
        "phases": phases,
    }

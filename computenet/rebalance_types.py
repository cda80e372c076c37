"""Rebalancing runs as the SDK and the CLI see them: planned moves and run records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class MoveKind(StrEnum):
    """Why a job moves: the planner rule that proposed it."""

    PLACE = "place"
    MIGRATE = "migrate"
    EVACUATE = "evacuate"
    FOLLOW_DEMAND = "follow_demand"


@dataclass(frozen=True, slots=True)
class RebalanceMove:
    """One planned move, and whether applying it worked."""

    job_id: str
    kind: MoveKind
    from_site: str
    """Site it leaves; empty for a pending job."""
    to_site: str
    savings_cny: float = 0.0
    """Expected savings over the remaining run (carbon included at its price), CNY."""
    savings_carbon_kg: float = 0.0
    cost_cny: float = 0.0
    """What the move itself costs (idle cards, transfer, restart), CNY."""
    reason: str = ""
    applied: bool = False
    error: str = ""

    @property
    def net_cny(self) -> float:
        """Expected savings minus the cost of the move."""
        return self.savings_cny - self.cost_cny

    def to_dict(self) -> dict[str, object]:
        """The documented JSON shape of a move."""
        return {
            "job_id": self.job_id,
            "kind": self.kind.value,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "savings_cny": round(self.savings_cny, 2),
            "savings_carbon_kg": round(self.savings_carbon_kg, 3),
            "cost_cny": round(self.cost_cny, 2),
            "net_cny": round(self.net_cny, 2),
            "reason": self.reason,
            "applied": self.applied,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RebalanceRunInfo:
    """One rebalancing run: trigger, timing, moves, savings and errors."""

    run_id: str
    trigger: str
    """`manual`, or a schedule label and its fire time, e.g. `interval@2026-01-01T08:00:00Z`."""
    dry_run: bool
    started_unix_ms: int
    ended_unix_ms: int
    moves: tuple[RebalanceMove, ...] = ()
    expected_savings_cny: float = 0.0
    realised_savings_cny: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def applied_moves(self) -> int:
        """How many of the planned moves were applied."""
        return sum(1 for m in self.moves if m.applied)

    def to_dict(self) -> dict[str, object]:
        """The documented JSON shape of a run."""
        return {
            "run_id": self.run_id,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "started_unix_ms": self.started_unix_ms,
            "ended_unix_ms": self.ended_unix_ms,
            "moves_planned": len(self.moves),
            "moves_applied": self.applied_moves,
            "expected_savings_cny": round(self.expected_savings_cny, 2),
            "realised_savings_cny": round(self.realised_savings_cny, 2),
            "moves": [m.to_dict() for m in self.moves],
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class RebalanceRunPage:
    """A page of runs, newest first, and the token of the next page ("" on the last)."""

    runs: list[RebalanceRunInfo] = field(default_factory=list)
    next_page_token: str = ""

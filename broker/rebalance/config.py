"""Settings of the rebalancing planner: move budget, migration margins, anti-flapping, interval."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlannerRules(BaseModel):
    """The knobs of `plan_moves` an operator sets: move budget, margins, anti-flapping rules.

    Prices (carbon, accelerator-hour value) come from the placement policy; `RebalanceConfig`
    adds the interval between runs, which the schedule decides.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_moves_per_run: int = Field(
        20,
        ge=0,
        description="Move budget of one run; the most valuable moves are kept (evacuations first).",
    )
    restart_overhead_h: float = Field(
        0.25,
        ge=0,
        description=(
            "Hours of the job's accelerators lost to stopping, checkpointing and restarting a "
            "moved job, on top of the checkpoint transfer."
        ),
    )
    min_gain_fraction: float = Field(
        0.2,
        ge=0,
        description=(
            "An optional move must save at least this fraction of its cost beyond the cost "
            "itself: savings - cost >= fraction x cost."
        ),
    )
    min_gain_cny: float = Field(
        50.0,
        ge=0,
        description="An optional move must also save at least this many CNY beyond its cost.",
    )
    cooldown_runs: int = Field(
        4,
        ge=0,
        description=(
            "A job moved in the last this-many applied runs is not moved again by an optional "
            "rule (evacuation and SLO violations still move it)."
        ),
    )
    cooldown_s: float = Field(
        6 * 3600.0,
        ge=0,
        description="A job moved less than this many seconds ago is not moved by an optional rule.",
    )
    forbid_return: bool = Field(
        True,
        description=(
            "An optional move never takes a job back to the site its last move took it from, "
            "so prices that swing through the day cannot make it oscillate."
        ),
    )
    min_remaining_h: float = Field(
        1.0,
        ge=0,
        description="Jobs with less run time left than this are never migrated for savings.",
    )
    demand_min_rtt_gain_ms: float = Field(
        10.0,
        ge=0,
        description=(
            "An inference job within its SLO moves for demand only if another site lowers its "
            "demand-weighted RTT by at least this many ms (and the move pays for itself)."
        ),
    )
    evacuate_uncheckpointable_on_drain: bool = Field(
        False,
        description=(
            "Also evacuate training and batch jobs without checkpoints from draining sites "
            "(they restart from scratch); by default they finish where they are."
        ),
    )


class RebalanceConfig(PlannerRules):
    """Knobs of `plan_moves`: the operator's rules and the interval between runs."""

    run_interval_h: float = Field(
        0.25,
        gt=0,
        description=(
            "Hours until the next run; a pending job placed now is credited with the "
            "accelerator-hours it would otherwise wait."
        ),
    )

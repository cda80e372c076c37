"""The `rebalance` section of the broker config file: when runs happen, under which lease holder,
and the planner's rules (`rebalance.planner`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from broker.config.fields import STRICT, Kind
from broker.rebalance.config import PlannerRules, RebalanceConfig
from broker.rebalance.schedule import crontab_trigger

SECONDS_PER_HOUR = 3600.0


def _crontab(value: str) -> str:
    crontab_trigger(value)  # raises ValueError saying what is wrong
    return " ".join(value.split())


Crontab = Annotated[str, AfterValidator(_crontab), Kind("crontab")]
"""Five crontab fields, minute hour day month weekday, in CST; weekdays by name (`mon-fri`)."""


class PlannerConfig(PlannerRules):
    """The planner's move budget, margins and anti-flapping rules, and the run interval it
    assumes."""

    model_config = STRICT

    run_interval_h: float | None = Field(
        None,
        gt=0,
        description=(
            "Hours until the next run, for which a pending job the planner places is credited "
            "with its cards' waiting value; null: every_s in hours (0.25 when every_s is 0)."
        ),
    )

    def rebalance_config(self, every_s: float) -> RebalanceConfig:
        """The planner config of a broker running every `every_s` seconds (0: no interval)."""
        run_interval_h = self.run_interval_h
        if run_interval_h is None:
            default = RebalanceConfig.model_fields["run_interval_h"].get_default()
            run_interval_h = every_s / SECONDS_PER_HOUR if every_s > 0 else default
        rules = self.model_dump(exclude={"run_interval_h"})
        return RebalanceConfig(**rules, run_interval_h=run_interval_h)


class RebalanceSection(BaseModel):
    """Rebalancing runs: when they run, under which lease holder, and how the planner moves."""

    model_config = STRICT

    every_s: float = Field(
        900.0,
        ge=0,
        description=(
            "Seconds between interval runs; 0 turns interval and time-of-use runs off "
            "(crontab runs stay)."
        ),
    )
    tou_triggers: bool = Field(
        True,
        description="Also run shortly before each hour at which a site's power price changes.",
    )
    tou_lead_minutes: int = Field(
        5, ge=0, le=59, description="Minutes before a power price change that its run starts."
    )
    crontabs: list[Crontab] = Field(
        default_factory=list,
        description=(
            "Extra runs, as crontab expressions in China Standard Time (UTC+8), e.g. "
            "'0 3 * * mon-fri'; weekdays must be named, since crontab counts Sunday as 0 and "
            "the scheduler Monday."
        ),
    )
    misfire_grace_time_s: int = Field(
        300,
        ge=1,
        le=86_400,
        description=(
            "A run due up to this many seconds ago (a busy worker, a paused process) still runs."
        ),
    )
    jitter_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Each scheduled run starts up to this many seconds after its fire, at random; "
            "must be less than misfire_grace_time_s."
        ),
    )
    dry_run: bool = Field(
        False, description="Scheduled runs only plan and record; operators apply by hand."
    )
    holder: str = Field(
        "",
        max_length=64,
        description=(
            "This replica's name on the rebalancing lease; empty: a fresh name per process. "
            "A stable name keeps the lease across restarts."
        ),
    )
    lease_ttl_s: float = Field(
        120.0,
        gt=0,
        description="How long the rebalancing lease lasts after each run; must exceed clock skew.",
    )
    planner: PlannerConfig = Field(
        default_factory=PlannerConfig,
        description="How runs move jobs: move budget, savings margins, anti-flapping rules.",
    )

    @field_validator("jitter_s")
    @classmethod
    def _jitter_within_grace(cls, jitter_s: float, info: ValidationInfo) -> float:
        # the delay holds the scheduler's one worker; a fire queued behind must not miss its grace
        grace_s = info.data.get("misfire_grace_time_s")
        if grace_s is not None and jitter_s >= grace_s:
            raise ValueError(
                f"must be less than misfire_grace_time_s ({grace_s}), got {jitter_s:g}"
            )
        return jitter_s

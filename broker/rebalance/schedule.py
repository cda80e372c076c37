"""When rebalancing runs: an APScheduler 3 adapter with interval, time-of-use and crontab triggers.

Jobs live in APScheduler's memory job store and are derived from the config at every start, so
the broker's database holds no scheduler table: interval fires are aligned to a fixed epoch and
cron fires to the clock, so every replica and every restart computes the same fire times, and
each fire is claimed once in the store (`RunRecords.claim_fire`) before it runs. Jitter delays
a run after its fire, never the fire itself, so it leaves the fire times alike on every replica.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from topology import CST, Topology

log = logging.getLogger(__name__)

RunFn = Callable[[str], object]
INTERVAL_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Interval runs fire at whole multiples of the interval since this moment, on every replica."""
HOURS_PER_DAY = 24
MINUTES_PER_DAY = 24 * 60
CRONTAB_FIELDS = 5


def crontab_trigger(expr: str) -> CronTrigger:
    """The trigger of a five-field crontab (minute hour day month weekday) in CST.

    Raises ValueError saying what is wrong. Weekdays must be named (`mon-fri`): crontab counts
    Sunday as 0 and APScheduler 3 counts Monday as 0, so a number would silently shift the day.
    """
    fields = expr.split()
    if len(fields) != CRONTAB_FIELDS:
        raise ValueError(
            f"expected {CRONTAB_FIELDS} fields (minute hour day month weekday), got {len(fields)}"
        )
    weekday = fields[-1]
    if any(char.isdigit() for char in weekday):
        raise ValueError(
            f"name the weekdays (mon-fri, sun) instead of {weekday!r}: crontab and the "
            "scheduler number them differently"
        )
    try:
        trigger = CronTrigger.from_crontab(expr, timezone=CST)
    except ValueError as exc:
        raise ValueError(f"invalid crontab {expr!r}: {exc}") from None
    if trigger.get_next_fire_time(None, INTERVAL_EPOCH) is None:
        raise ValueError(f"crontab {expr!r} never fires")
    return trigger


def jitter_delay_s(jitter_s: float) -> float:
    """A random delay of up to `jitter_s` seconds before a run (spreads runs, not security)."""
    return random.uniform(0.0, jitter_s)


class RebalanceScheduleConfig(BaseModel):
    """When rebalancing runs start; the broker builds it from its rebalancing settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Run rebalancing on a schedule at all.")
    name: str = Field(
        "rebalance",
        min_length=1,
        max_length=64,
        description="Prefix of the scheduler's job ids (and of its log lines).",
    )
    interval_s: float | None = Field(
        900.0, gt=0, description="Seconds between interval-triggered runs; None: no interval runs."
    )
    tou_triggers: bool = Field(
        True,
        description="Also run shortly before every hour at which some site's power price changes.",
    )
    tou_lead_minutes: int = Field(
        5, ge=0, le=59, description="Minutes before a price change that its run starts."
    )
    crontabs: tuple[str, ...] = Field(
        (),
        description=(
            "Extra runs as crontab expressions in China Standard Time (UTC+8), weekdays named "
            "(see `crontab_trigger`)."
        ),
    )
    misfire_grace_time_s: int = Field(
        300, ge=1, description="A run missed by up to this many seconds (e.g. downtime) still runs."
    )
    jitter_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Each run starts after a random delay of up to this many seconds; its fire time, "
            "and so the trigger it records, stays the scheduled one."
        ),
    )

    @field_validator("crontabs")
    @classmethod
    def _valid_crontabs(cls, crontabs: tuple[str, ...]) -> tuple[str, ...]:
        for crontab in crontabs:
            crontab_trigger(crontab)
        return crontabs

    @model_validator(mode="after")
    def _jitter_within_grace(self) -> RebalanceScheduleConfig:
        # a jitter delay holds the one worker; a fire queued behind it must not outwait its grace
        if self.jitter_s >= self.misfire_grace_time_s:
            raise ValueError(
                f"jitter_s ({self.jitter_s:g}) must be less than misfire_grace_time_s "
                f"({self.misfire_grace_time_s})"
            )
        return self


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """A scheduled trigger and when it fires next."""

    job_id: str
    trigger: str
    next_run_unix_s: float | None


def price_change_hours(topology: Topology) -> list[int]:
    """CST hours of the day at which at least one site's hourly power price changes."""
    hours: set[int] = set()
    for site in topology.sites:
        prices = site.hourly_price_cny_per_kwh
        hours.update(h for h in range(HOURS_PER_DAY) if prices[h] != prices[h - 1])
    return sorted(hours)


def desired_triggers(
    config: RebalanceScheduleConfig, topology: Topology | None
) -> dict[str, tuple[str, BaseTrigger]]:
    """Job id -> (trigger label, trigger) for everything `config` asks for.

    No trigger carries APScheduler's own jitter: it moves the fire time itself, differently on
    each replica (and, for intervals, cumulatively), which would break the shared fire labels.
    """
    out: dict[str, tuple[str, BaseTrigger]] = {}
    if config.interval_s is not None:
        interval = IntervalTrigger(seconds=config.interval_s, start_date=INTERVAL_EPOCH)
        out[f"{config.name}:interval"] = ("interval", interval)
    if config.tou_triggers and topology is not None:
        for hour in price_change_hours(topology):
            at = (hour * 60 - config.tou_lead_minutes) % MINUTES_PER_DAY
            trigger = CronTrigger(hour=at // 60, minute=at % 60, timezone=CST)
            out[f"{config.name}:tou-{hour:02d}00"] = (f"tou-{hour:02d}00", trigger)
    for k, crontab in enumerate(config.crontabs):
        out[f"{config.name}:cron-{k}"] = (f"cron-{k}", crontab_trigger(crontab))
    return out


def fire_label(label: str, fire: datetime) -> str:
    """The trigger a scheduled run records: its label and its scheduled fire time (UTC)."""
    utc = fire.astimezone(UTC)
    return f"{label}@{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


class _StampedJob:
    """A job as the executor sees it, its trigger label carrying the scheduled fire time."""

    def __init__(self, job: Any, fire: datetime) -> None:
        self._job = job
        (label,) = job.args
        self.args = (fire_label(str(label), fire),)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._job, attr)


class _FireTimeExecutor(ThreadPoolExecutor):  # type: ignore[misc]
    """One worker thread; each run learns which scheduled fire it is (jobs always coalesce)."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        super()._do_submit_job(_StampedJob(job, run_times[-1]), run_times)


class RebalanceScheduler:
    """Runs `run_fn(trigger_label)` on the configured triggers, one run at a time.

    Every job has max_instances=1 and coalesce=True, and all jobs share one worker thread, so
    runs never overlap and a backlog collapses into one run. A run missed by up to the misfire
    grace time (a busy worker, a paused process) still happens. With jitter, each run first
    waits `delay_s(jitter_s)` seconds on the worker; shutdown() cuts that wait short.
    """

    def __init__(
        self,
        config: RebalanceScheduleConfig,
        run_fn: RunFn,
        *,
        topology: Topology | None = None,
        delay_s: Callable[[float], float] = jitter_delay_s,
    ) -> None:
        self.config = config
        self._run_fn = run_fn
        self._topology = topology
        self._delay_s = delay_s
        self._scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        """True between start() and shutdown()."""
        return self._scheduler is not None

    def start(self) -> None:
        """Schedule the configured triggers and start firing them (idempotent)."""
        with self._lock:
            if self._scheduler is not None or not self.config.enabled:
                return
            scheduler = BackgroundScheduler(
                jobstores={"default": MemoryJobStore()},
                executors={"default": _FireTimeExecutor(max_workers=1)},
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": self.config.misfire_grace_time_s,
                },
                timezone=CST,
            )
            self._stopping.clear()
            scheduler.start(paused=True)
            self._add_jobs(scheduler)
            scheduler.resume()
            self._scheduler = scheduler
            log.info("rebalance scheduler started name=%s", self.config.name)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop scheduling, waiting for a run in progress if `wait` (idempotent)."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            if scheduler is None:
                return
            self._stopping.set()
            scheduler.shutdown(wait=wait)
            log.info("rebalance scheduler stopped name=%s", self.config.name)

    def jobs(self) -> list[ScheduledRun]:
        """The scheduled triggers, by job id."""
        scheduler = self._scheduler
        if scheduler is None:
            return []
        return sorted(
            (
                ScheduledRun(
                    j.id, str(j.args[0]), j.next_run_time.timestamp() if j.next_run_time else None
                )
                for j in scheduler.get_jobs()
            ),
            key=lambda r: r.job_id,
        )

    def _add_jobs(self, scheduler: BackgroundScheduler) -> None:
        """One job per configured trigger, calling the run function with the trigger's label."""
        for job_id, (label, trigger) in desired_triggers(self.config, self._topology).items():
            scheduler.add_job(self._run, trigger, args=[label], id=job_id, name=label)

    def _run(self, trigger: str) -> None:
        """One fire on the worker thread: the jitter delay, then the run unless shut down."""
        if self.config.jitter_s > 0 and self._stopping.wait(self._delay_s(self.config.jitter_s)):
            log.info("scheduled rebalance dropped trigger=%s: shutting down", trigger)
            return
        self._run_fn(trigger)

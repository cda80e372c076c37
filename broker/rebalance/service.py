"""The broker's rebalancing: lease, run records, runner and schedule wired to the live broker."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.placement import Policy
from broker.rebalance.config import RebalanceConfig
from broker.rebalance.live import LiveRebalance
from broker.rebalance.runner import RebalanceRunner, RunnerSettings
from broker.rebalance.schedule import RebalanceScheduleConfig, RebalanceScheduler
from broker.store import RebalanceStore, open_rebalance_store
from broker.writer import StoreWriter
from computenet.rebalance_types import RebalanceRunInfo, RebalanceRunPage
from topology import Topology

log = logging.getLogger(__name__)

MANUAL = "manual"


def default_holder() -> str:
    """A replica id unique to this process; pass a stable one to keep the lease across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class RebalanceSettings:
    """How the broker rebalances: schedule, planner, replica identity and lease."""

    every_s: float = 900.0
    """Seconds between interval runs; 0 turns interval and time-of-use runs off (crontabs stay)."""
    holder: str = ""
    """This replica's lease holder name; empty for a fresh one per process."""
    dry_run: bool = False
    """Scheduled runs only plan and record (operators still apply by hand)."""
    lease_ttl_s: float = 120.0
    """How long the lease lasts after each run; must exceed the replicas' clock skew."""
    tou_triggers: bool = True
    """Also run shortly before each time-of-use price change (when interval runs are on)."""
    tou_lead_minutes: int = 5
    """Minutes before a price change that its run starts."""
    crontabs: tuple[str, ...] = ()
    """Extra runs as five-field crontabs in CST, weekdays named (`crontab_trigger` checks them)."""
    jitter_s: float = 0.0
    """Each scheduled run starts up to this many seconds after its fire, at random."""
    misfire_grace_time_s: int = 300
    """A fire missed by up to this many seconds (a busy worker, a paused process) still runs."""
    planner: RebalanceConfig = field(default_factory=RebalanceConfig)
    """The planner's move budget, margins and anti-flapping rules, for every run."""


def schedule_config(settings: RebalanceSettings, name: str) -> RebalanceScheduleConfig:
    """The schedule `settings` ask for, its job ids prefixed with `name` (cut to 64 characters).

    Interval and time-of-use runs need `every_s > 0`; crontab runs do not, so a broker may run
    on crontabs alone. With neither, nothing is scheduled.
    """
    interval = settings.every_s > 0
    return RebalanceScheduleConfig(
        enabled=interval or bool(settings.crontabs),
        name=name[:64],
        interval_s=settings.every_s if interval else None,
        tou_triggers=interval and settings.tou_triggers,
        tou_lead_minutes=settings.tou_lead_minutes,
        crontabs=settings.crontabs,
        misfire_grace_time_s=settings.misfire_grace_time_s,
        jitter_s=settings.jitter_s,
    )


class RebalanceService:
    """Plans, applies and records runs on demand and on schedule; one per leadership term.

    Only the broker leader builds one; it takes the rebalancing lease at start. Each
    scheduled fire (`label@time`) is still claimed once in the database before it runs.
    """

    def __init__(
        self,
        *,
        store: RebalanceStore,
        live: LiveRebalance,
        topology: Topology,
        settings: RebalanceSettings,
        config: RebalanceConfig | None = None,
    ) -> None:
        self.settings = settings
        self.holder = settings.holder or default_holder()
        self.live = live
        self.store = store
        self.lease = store.lease
        self.runs = store.runs
        self.runner = RebalanceRunner(
            config=config if config is not None else settings.planner,
            settings=RunnerSettings(holder=self.holder, lease_ttl_s=settings.lease_ttl_s),
            lease=self.lease,
            runs=self.runs,
            load_input=live.load_input,
            apply_step=live.apply_step,
        )
        schedule = schedule_config(settings, f"rebalance-{self.holder}")
        self.scheduler = RebalanceScheduler(schedule, self._scheduled, topology=topology)

    async def start(self) -> None:
        """Bind to the running loop, settle migrations a stopped broker left, start the schedule."""
        self.live.bind(asyncio.get_running_loop())
        # Only the broker leader runs this service, and its writes are fenced by its epoch:
        # a predecessor's rebalancing lease (it may have died holding it) does not bind it.
        token = await asyncio.to_thread(
            self.lease.try_acquire, self.holder, self.settings.lease_ttl_s
        )
        if token is None:
            token = await asyncio.to_thread(
                self.lease.seize, self.holder, self.settings.lease_ttl_s
            )
            log.info("rebalance lease taken over from the previous leader token=%d", token)
        await self.live.abandon_migrations()
        self.scheduler.start()

    def shutdown(self) -> None:
        """Stop scheduling (waiting for a run in progress) and close connections; idempotent."""
        self.scheduler.shutdown(wait=True)
        self.store.close()

    def _scheduled(self, trigger: str) -> None:
        """A scheduled fire: run it if this replica holds the lease and nobody ran it yet."""
        if self.lease.try_acquire(self.holder, self.settings.lease_ttl_s) is None:
            log.debug("scheduled rebalance skipped trigger=%s: lease held elsewhere", trigger)
            return
        now_ms = int(time.time() * 1000)
        if "@" in trigger and not self.runs.claim_fire(trigger, self.holder, now_ms):
            log.info("scheduled rebalance already ran trigger=%s", trigger)
            return
        try:
            self.runner.run(trigger, dry_run=self.settings.dry_run)
        except Exception:  # the schedule must survive a failed run; the next fire retries
            log.exception("scheduled rebalance failed trigger=%s", trigger)

    async def plan(self, move_budget: int = 0) -> RebalanceRunInfo:
        """A dry run now: the moves a run would make, recorded as a dry run."""
        run = await asyncio.to_thread(
            self.runner.run, MANUAL, dry_run=True, move_budget=move_budget
        )
        assert run is not None  # dry runs never need the lease
        return run

    async def apply(self, move_budget: int = 0) -> RebalanceRunInfo | None:
        """Plan and apply a run now; None if another replica holds the lease."""
        return await asyncio.to_thread(self.runner.run, MANUAL, move_budget=move_budget)

    async def history(self, page_size: int, page_token: str = "") -> RebalanceRunPage:
        """Runs newest first; the page token is the last run id of the previous page."""
        size = max(1, page_size)
        runs = await asyncio.to_thread(self.runs.list_runs, size + 1, page_token or None)
        more = len(runs) > size
        runs = runs[:size]
        return RebalanceRunPage(runs, runs[-1].run_id if more and runs else "")


def build_rebalance(
    *,
    db_url: str,
    writer: StoreWriter,
    capacity: CapacityView,
    driver: JobDriver,
    policy: Policy,
    topology: Topology,
    settings: RebalanceSettings,
) -> RebalanceService:
    """The broker's rebalancing on the store at `db_url` (its lease and run records), hooked in."""
    store = open_rebalance_store(db_url)
    live = LiveRebalance(
        writer=writer, capacity=capacity, driver=driver, policy=policy, lease=store.lease
    )
    driver.on_place_at_target = live.place_at_target
    return RebalanceService(
        store=store, live=live, topology=topology, settings=settings, config=settings.planner
    )

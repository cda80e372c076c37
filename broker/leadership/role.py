"""The leader's working state, built from the database when a term starts and dropped when it ends.

Only the leader places, dispatches, judges liveness and rebalances. Everything that does so
lives here, so a replica that loses its term drops all of it at once, and a replica that wins
one starts from what the database says, as a restarted broker would: the site registry counts
every site as just heard from (no site is judged lost before the agents' lease could have run
out), the pending queue and the ledger are read back, and jobs placed but never acknowledged
are delivered again when their sites say hello (the jobs table is the dispatch outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from broker.accounting.accountant import DEFAULT_EVERY_S, UsageAccountant
from broker.control import JobMachine, RetryPolicy
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.liveness import LivenessLoop
from broker.jobflow.placement_loop import LoopTiming, PlacementLoop
from broker.jobflow.tracker import JobTracker
from broker.leadership.term import Term
from broker.placement import Policy
from broker.rebalance.service import RebalanceService, RebalanceSettings, build_rebalance
from broker.sites.registry import SiteRegistry, report_from_json
from broker.sites.sessions import SessionTable
from broker.store.accounting import UsageIncrement
from broker.store.protocol import Fence
from broker.tenancy import TenantsTable
from broker.writer import StoreWriter
from computenet.types import Job, JobEvent, SiteId
from topology import Topology

log = logging.getLogger(__name__)

LEADER_LEASE = "leader"


@dataclass(frozen=True, slots=True)
class RoleSettings:
    """What the leader's loops are configured with (from the broker settings)."""

    db_url: str
    suspect_after_s: float
    lost_after_s: float
    stale_capacity_after_s: float
    retry: RetryPolicy
    timing: LoopTiming
    rebalance: RebalanceSettings
    usage_every_s: float = DEFAULT_EVERY_S
    """How often running attempts' usage is priced and recorded."""
    tenants: Callable[[], TenantsTable] = TenantsTable
    """The tenants table of each placement round (re-read from the config file)."""


class LeaderRole:
    """Registry, sessions, driver, tracker, capacity view, placement, liveness and rebalancing
    of one term; every write they make is fenced by the term's epoch."""

    def __init__(
        self,
        *,
        term: Term,
        settings: RoleSettings,
        writer: StoreWriter,
        topology: Topology,
        policy: Policy,
        leading: Callable[[], bool],
        broker_id: str,
        on_decision: Callable[[float], None] | None = None,
        on_usage: Callable[[Sequence[UsageIncrement]], None] | None = None,
        on_preempted: Callable[[str], None] | None = None,
    ) -> None:
        self.term = term
        self.fence = Fence(LEADER_LEASE, term.epoch)
        self.leading = leading
        self._writer = writer
        self.registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
            suspect_after_s=settings.suspect_after_s,
            lost_after_s=settings.lost_after_s,
            now_s=time.monotonic(),
            stale_capacity_after_s=settings.stale_capacity_after_s,
        )
        self.sessions = SessionTable()
        self.driver = JobDriver(
            writer, self.sessions, JobMachine(settings.retry), leader_fence=self.fence
        )
        self.tracker = JobTracker(writer, self.driver)
        self.capacity = CapacityView(writer=writer, registry=self.registry, topology=topology)
        self.placement = PlacementLoop(
            writer=writer,
            registry=self.registry,
            capacity=self.capacity,
            driver=self.driver,
            policy=policy,
            timing=settings.timing,
            on_decision=on_decision,
            tenants=settings.tenants,
            on_preempted=on_preempted,
        )
        self.liveness = LivenessLoop(
            registry=self.registry,
            sessions=self.sessions,
            tracker=self.tracker,
            placement=self.placement,
            every_s=settings.timing.liveness_every_s,
        )
        self.rebalance: RebalanceService = build_rebalance(
            db_url=settings.db_url,
            writer=writer,
            capacity=self.capacity,
            driver=self.driver,
            policy=policy,
            topology=topology,
            # the rebalancing lease is held under this replica's name unless one is configured
            settings=replace(settings.rebalance, holder=settings.rebalance.holder or broker_id),
        )
        self.accountant = UsageAccountant(
            writer=writer,
            topology=topology,
            fence=self.fence,
            every_s=settings.usage_every_s,
            on_recorded=on_usage,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    def created(self, jobs: list[Job] | tuple[Job, ...]) -> None:
        """Jobs this replica's writer just created."""
        if not self._stopped:
            self.placement.adopt(jobs)

    def observe(self, events: list[JobEvent] | tuple[JobEvent, ...]) -> None:
        """Committed events, from this replica's writer or read back from the database."""
        if not self._stopped:
            self.placement.observe(events)
            self.accountant.observe(events)

    async def start(self) -> None:
        """Read the database's state and start the leader's loops."""
        store = self._writer.store
        for record in await self._writer.read(store.sites):
            if record.site_id in self.registry:
                self.registry.restore(
                    record.site_id,
                    drained=record.drained,
                    report=report_from_json(record.report_json),
                )
        await self.rebalance.start()  # settles unfinished migrations before agents reconnect
        await self.placement.load_pending()
        self._tasks = [
            asyncio.create_task(self.placement.run(self._stop)),
            asyncio.create_task(self.liveness.run(self._stop)),
            asyncio.create_task(self.accountant.run(self._stop)),
        ]
        log.info("leader started epoch=%d", self.term.epoch)

    async def stop(self) -> None:
        """Stop acting at once: end every agent stream and every loop; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for session in self.sessions.all():
            session.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.rebalance.shutdown)
        log.info("leader stopped epoch=%d", self.term.epoch)

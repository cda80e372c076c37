"""The broker process: wires settings, store, topology, loops and servicers until signalled."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from broker.config.tenants_file import TenantsFile
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import SUBMITTED, LoopTiming, PlacementLoop
from broker.jobflow.tenant_views import LoopTenancyView
from broker.jobs_api.accounting import AccountingQueries
from broker.jobs_api.hub import EventHub
from broker.jobs_api.manager import JobManager
from broker.jobs_api.queue_view import TenancyView
from broker.jobs_api.tail import EventTail
from broker.leadership.cluster import cluster_status
from broker.leadership.elector import Elector, ReplicaIdentity
from broker.leadership.role import LeaderRole, RoleSettings
from broker.leadership.term import LeadershipTiming, Term
from broker.placement import Policy, place
from broker.rebalance.service import RebalanceService, default_holder
from broker.rpc.accounting_servicer import AccountingServicer
from broker.rpc.decoding import MalformedRequestInterceptor
from broker.rpc.federation_servicer import FederationServicer
from broker.rpc.gateways import (
    FederationGateway,
    LeaderGate,
    RebalanceGateway,
    SiteGateway,
    TermServicers,
)
from broker.rpc.job_servicer import JobServicer
from broker.rpc.metrics import BrokerMetrics, RpcMetricsInterceptor
from broker.rpc.paging import page_bytes_for
from broker.rpc.rebalance_servicer import RebalanceServicer
from broker.rpc.server import BoundServer, Servicers, start_server
from broker.rpc.site_servicer import SiteServicer
from broker.security.limits import server_options
from broker.security.setup import build_security
from broker.settings import BrokerSettings
from broker.sites.federation import Federation
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import claim_single_replica, open_coordination, open_store
from broker.writer import StoreWriter
from computenet.address import Address
from computenet.errors import NotLeaderError
from computenet.logging_setup import redact_url
from computenet.spec import JobSpec
from computenet.types import ClusterStatus, Job, JobEvent, Placement
from topology import Topology, default_topology, load_topology

if TYPE_CHECKING:
    from broker.web.server import ConsoleServer

log = logging.getLogger(__name__)


SINGLE_REPLICA_TIMING = LeadershipTiming(
    lease_s=3600.0, renew_every_s=60.0, step_down_margin_s=60.0
)
"""On SQLite the file lock proves there is no other replica, so nobody can take over: a long
lease keeps a stalled event loop (a loaded machine) from deposing the only broker."""


def _load_topology(path: Path | None) -> tuple[Topology, str]:
    if path is None:
        text = (resources.files("topology") / "data" / "china.yaml").read_text(encoding="utf-8")
        return default_topology(), text
    return load_topology(path), path.read_text(encoding="utf-8")


class Broker:
    """A running broker replica: gRPC server, store, elections, and the leader's work while it
    leads (broker.leadership.role)."""

    def __init__(self, settings: BrokerSettings) -> None:
        if settings.lost_after_s < settings.lease_s + settings.clock_skew_margin_s:
            raise ValueError(
                f"lost_after_s ({settings.lost_after_s:g}) must be at least lease_s "
                f"({settings.lease_s:g}) + clock_skew_margin_s "
                f"({settings.clock_skew_margin_s:g})"
            )
        if settings.db_url.split("?")[0] in ("sqlite://", "sqlite:///:memory:"):
            raise ValueError(
                "the broker needs a database file or server: an in-memory SQLite database is "
                "not shared between the broker's connections"
            )
        self.settings = settings
        self.topology, self._topology_yaml = _load_topology(settings.topology_path)
        self.metrics = BrokerMetrics()
        # SQLite holds one replica: refuse before touching anything if another one runs
        self._claim = claim_single_replica(settings.db_url)
        self.writer = StoreWriter(open_store(settings.db_url), submit_url=settings.db_url)
        self.coordination = open_coordination(settings.db_url)
        self.hub = EventHub(self.writer.store.last_sequence())
        self.writer.on_events(self.hub.publish)
        self.writer.on_created(self._created)
        self.writer.on_events(self._observed)
        self.tenants = TenantsFile(settings.config_path, settings.tenants)
        self._policy = Policy.default(settings.policy)
        self._placer = lambda spec, snap: place(spec, snap, self._policy)
        self._timing = LoopTiming(round_budget_s=settings.placement_round_budget_s)
        self.role: LeaderRole | None = None
        self._starting: asyncio.Task[None] | None = None
        self._term_servicers: TermServicers | None = None
        self.jobs = JobManager(
            writer=self.writer,
            hub=self.hub,
            topology=self.topology,
            driver=lambda: self.leader().driver,
            pending_reasons=lambda: self.role.placement.pending_reasons if self.role else {},
            live_plan=self.plan,
        )
        self.accounting = AccountingQueries(writer=self.writer, view=self.tenancy_view)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.server: BoundServer | None = None
        self.metrics_address: Address | None = None
        self.security = build_security(settings.security, settings.listen)
        self.console = self._console() if settings.http_listen is not None else None
        self._broker_epoch = uuid.uuid4().hex[:12]
        sqlite = self.coordination.dialect == "sqlite"
        replica_id = settings.cluster.replica_id or ("single" if sqlite else default_holder())
        self.elector = Elector(
            self.coordination,
            ReplicaIdentity(replica_id, "", "", int(time.time() * 1000)),
            timing=SINGLE_REPLICA_TIMING if sqlite else settings.cluster.timing,
            on_elected=self._elected,
            on_deposed=self._deposed,
            exclusive=sqlite,
        )

    # -- the leader's parts, while this replica leads -------------------------------------

    def leader(self) -> LeaderRole:
        """The current term's working state; NotLeaderError on a follower."""
        role = self.role
        if role is None or not self.elector.leading():
            raise self.not_leader()
        return role

    def not_leader(self) -> NotLeaderError:
        """The error a follower answers leader-only calls with, naming the leader if known."""
        hint = self.elector.leader_hint
        if hint is None:
            return NotLeaderError("no broker replica leads right now; retry shortly", 1.0)
        return NotLeaderError(
            f"this broker replica follows; the leader is {hint.broker_id} at {hint.address}",
            0.2,
            leader_address=hint.address,
            leader_agent_address=hint.agent_address,
        )

    def federation(self) -> Federation:
        """The leader's site views and drains; NotLeaderError on a follower."""
        servicers = self._term_servicers
        if servicers is None:
            raise self.not_leader()
        return servicers.federation.federation

    def _console(self) -> ConsoleServer:
        # imported only when the console is asked for: brokers without one skip its libraries
        from broker.web.context import ConsoleServices
        from broker.web.server import ConsoleServer, console_tls

        listen = self.settings.http_listen
        assert listen is not None
        tls = console_tls(listen, self.security.tls_dir)
        services = ConsoleServices(
            jobs=self.jobs,
            federation=self.federation,
            rebalance=lambda: self.rebalance,
            topology=self.topology,
            hub=self.hub,
            accounting=self.accounting,
            tokens=self.security.tokens,
            anonymous=self.security.anonymous,
            secure_cookies=tls is not None,
        )
        return ConsoleServer(services, listen, tls)

    @property
    def registry(self) -> SiteRegistry:
        """The leader's site registry."""
        return self.leader().registry

    @property
    def sessions(self) -> SessionTable:
        """The leader's agent sessions."""
        return self.leader().sessions

    @property
    def driver(self) -> JobDriver:
        """The leader's job driver."""
        return self.leader().driver

    @property
    def placement(self) -> PlacementLoop:
        """The leader's placement loop."""
        return self.leader().placement

    @property
    def capacity(self) -> CapacityView:
        """The leader's capacity view."""
        return self.leader().capacity

    @property
    def rebalance(self) -> RebalanceService:
        """The leader's rebalancing service."""
        return self.leader().rebalance

    def tenancy_view(self) -> TenancyView:
        """The queue and tenants of the leader's placement rounds; NotLeaderError on a
        follower."""
        return LoopTenancyView(self.leader().placement)

    def _created(self, jobs: Sequence[Job]) -> None:
        if self.role is not None:
            self.role.created(list(jobs))

    def _observed(self, events: Sequence[JobEvent]) -> None:
        if self.role is not None:
            self.role.observe(list(events))

    def _tailed(self, events: Sequence[JobEvent]) -> None:
        """Events read back from the database: the leader learns of other replicas'
        submissions (its own writes it already saw)."""
        if self.role is not None:
            submitted = [e for e in events if e.cause == SUBMITTED]
            if submitted:
                self.role.observe(submitted)

    async def _elected(self, term: Term) -> None:
        """A term starts: build the leader's state beside the election loop, which keeps
        renewing meanwhile (a slow start must not let the term lapse)."""
        self._starting = asyncio.get_running_loop().create_task(self._take_up(term))

    async def _take_up(self, term: Term) -> None:
        settings = RoleSettings(
            db_url=self.settings.db_url,
            suspect_after_s=self.settings.suspect_after_s,
            lost_after_s=self.settings.lost_after_s,
            stale_capacity_after_s=self.settings.stale_capacity_after_s,
            retry=self.settings.retry,
            timing=self._timing,
            rebalance=self.settings.rebalance,
            usage_every_s=self.settings.usage_every_s,
            tenants=self.tenants.current,
        )
        # building opens the rebalancing store (a connection pool, a schema check): off the loop
        role = await asyncio.to_thread(
            lambda: LeaderRole(
                term=term,
                settings=settings,
                writer=self.writer,
                topology=self.topology,
                policy=self._policy,
                leading=self.elector.leading,
                broker_id=self.elector.identity.broker_id,
                on_decision=self.metrics.observe_decision,
                on_usage=self.metrics.count_usage,
                on_preempted=self.metrics.count_preemption,
            )
        )
        role.driver.on_fence_lost = self._fence_lost
        self.role = role
        try:
            await role.start()
        except asyncio.CancelledError:
            raise  # deposed while starting: _deposed stops the role
        except Exception:
            log.exception("cannot take up leadership epoch=%d", term.epoch)
            asyncio.get_running_loop().create_task(self.elector.step_down("leader start failed"))
            return
        self._term_servicers = self._servicers_for(role, term)
        self.metrics.set_leadership(epoch=term.epoch, leading=True, changed=True)

    async def _deposed(self, reason: str) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        role, self.role, self._term_servicers = self.role, None, None
        self.metrics.set_leadership(epoch=0, leading=False)
        if role is not None:
            await role.stop()

    async def _fence_lost(self, exc: Exception) -> None:
        # not awaited here: stepping down stops the very loop whose write was refused
        asyncio.get_running_loop().create_task(self.elector.step_down(f"fenced: {exc}"))

    def _servicers_for(self, role: LeaderRole, term: Term) -> TermServicers:
        return TermServicers(
            site=SiteServicer(
                registry=role.registry,
                sessions=role.sessions,
                tracker=role.tracker,
                on_status=role.liveness.on_status_changes,
                capacity_changed=role.placement.capacity_changed,
                broker_epoch=self._broker_epoch,
                heartbeat_interval_s=min(
                    self.settings.heartbeat_interval_s, self.settings.suspect_after_s / 3
                ),
                lease_s=self.settings.lease_s,
                require_site_certificate=self.security.require_site_certificate,
                leader_epoch=term.epoch,
                leading=self.elector.leading,
                not_leader=self.not_leader,
            ),
            federation=FederationServicer(
                registry=role.registry,
                sessions=role.sessions,
                writer=self.writer,
                topology=self.topology,
                topology_yaml=self._topology_yaml,
                on_status=role.liveness.on_status_changes,
                fence=role.fence,
            ),
            rebalance=RebalanceServicer(role.rebalance),
        )

    # -- every replica ---------------------------------------------------------------------

    async def plan(self, spec: JobSpec) -> Placement:
        """Where a spec would go now (dry run, on the leader's capacity view)."""
        return self._placer(spec, await self.leader().capacity.snapshot())

    async def cluster_status(self) -> ClusterStatus:
        """The replicas recorded in the database and the current leader."""
        return await asyncio.to_thread(
            cluster_status, self.coordination, self.elector.timing.lease_s
        )

    def servicers(self) -> Servicers:
        """The servicers every replica mounts; leader-only calls pass through the gate."""
        gate = LeaderGate(lambda: self._term_servicers, self.not_leader)
        return Servicers(
            site=SiteGateway(gate, site_known=set(self.topology.site_ids).__contains__),
            job=JobServicer(
                self.jobs,
                self.plan,
                max_page_bytes=page_bytes_for(self.settings.transport.max_message_bytes),
            ),
            federation=FederationGateway(gate, self.cluster_status),
            rebalance=RebalanceGateway(gate),
            accounting=AccountingServicer(self.accounting),
        )

    @property
    def agent_address(self) -> Address | None:
        """Where agents connect with mTLS (None: the client address, insecure mode)."""
        port = self.security.agent_port
        return port.bound if port is not None else None

    async def start(self) -> Address:
        """Start serving and take part in elections; returns the bound client address.

        The first lease attempt comes before the server listens, so a replica that can lead
        at once (always, on SQLite) serves agents from its first call.
        """
        sec = self.security
        await self.elector.attempt()
        if self._starting is not None:  # leading at once: ready before agents can call
            await asyncio.shield(self._starting)
        try:
            self.server = await start_server(
                self.settings.listen,
                self.servicers(),
                interceptors=[
                    # the security pipeline decodes after auth, through the checks inside it
                    *sec.interceptors,
                    MalformedRequestInterceptor(),
                    RpcMetricsInterceptor(self.metrics),
                ],
                credentials=sec.credentials,
                extra=[sec.agent_port] if sec.agent_port is not None else [],
                options=server_options(self.settings.transport),
            )
        except RuntimeError as exc:
            await self.elector.resign()
            raise OSError(f"cannot listen on {self.settings.listen}: {exc}") from None
        cluster = self.settings.cluster
        address = cluster.advertise or str(self.server.address)
        agents = cluster.advertise_agents or str(self.agent_address or self.server.address)
        self.elector.identity = replace(
            self.elector.identity, address=address, agent_address=agents
        )
        if self.console is not None:
            await self.console.start()
        if self.settings.metrics_listen is not None:
            port = self.metrics.serve(self.settings.metrics_listen)
            self.metrics_address = Address(self.settings.metrics_listen.host, port)
        self._tasks = [
            asyncio.create_task(self.elector.run(self._stop)),
            asyncio.create_task(self._gauge_loop()),
        ]
        if self.coordination.dialect != "sqlite":  # other replicas write too: follow them
            tail = EventTail(
                writer=self.writer,
                feed=self.coordination.feed,
                hub=self.hub,
                on_events=self._tailed,
            )
            self._tasks.append(asyncio.create_task(tail.run(self._stop)))
        return self.server.address

    async def _gauge_loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = await self.writer.read(self.writer.store.count_by_state)
                self.metrics.set_jobs(Counter(counts))
                role = self.role
                entries = role.registry.entries() if role is not None else []
                self.metrics.set_sites(Counter(e.status for e in entries))
                self.metrics.set_stale_capacity(sum(e.capacity_stale for e in entries))
            except Exception:
                log.exception("metrics refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 5.0)

    async def stop(self) -> None:
        """Give up leadership, stop the loops and the server, then close the store."""
        self._stop.set()
        if self.console is not None:
            await self.console.stop()
        await self.elector.resign()
        if self.server is not None:
            await self.server.stop()
        self.coordination.feed.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.writer.close()
        self.coordination.close()
        if self._claim is not None:
            self._claim.release()


async def serve_forever(settings: BrokerSettings) -> None:
    """Start the broker, print the bound address, and stop gracefully on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(settings)
    address = await broker.start()
    # What the start built lives as long as the process: keep the cyclic GC from walking it
    # again in every full collection (a pause of ~100 ms per collection under load).
    gc.collect()
    gc.freeze()
    print(f"listening on {address}", flush=True)
    role = "leader" if broker.elector.leading() else "follower"
    print(f"replica {broker.elector.identity.broker_id} {role}", flush=True)
    if broker.agent_address is not None:
        print(f"agents on {broker.agent_address}", flush=True)
    if broker.metrics_address is not None:
        print(f"metrics on {broker.metrics_address}", flush=True)
    topo = broker.topology
    log.info(
        "broker serving address=%s agents=%s database=%s topology=%s sites=%d links=%d role=%s",
        address,
        broker.agent_address or address,
        redact_url(settings.db_url),
        settings.topology_path or "default (national network)",
        len(topo.sites),
        len(topo.links),
        role,
    )
    if broker.console is not None:
        print(f"console on {broker.console.url}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await broker.stop()

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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from broker.control import JobMachine, RetryPolicy
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.liveness import LivenessLoop
from broker.jobflow.placement_loop import LoopTiming, PlacementLoop
from broker.jobflow.tracker import JobTracker
from broker.jobs_api.hub import EventHub
from broker.jobs_api.manager import JobManager
from broker.placement import Policy, PolicyConfig, place
from broker.rebalance.service import RebalanceSettings, build_rebalance
from broker.rpc.decoding import MalformedRequestInterceptor
from broker.rpc.federation_servicer import FederationServicer
from broker.rpc.job_servicer import JobServicer
from broker.rpc.metrics import BrokerMetrics, RpcMetricsInterceptor
from broker.rpc.paging import page_bytes_for
from broker.rpc.rebalance_servicer import RebalanceServicer
from broker.rpc.server import BoundServer, Servicers, start_server
from broker.rpc.site_servicer import SiteServicer
from broker.security.limits import ServerLimits, server_options
from broker.security.setup import SecuritySettings, build_security
from broker.sites.registry import SiteRegistry, report_from_json
from broker.sites.sessions import SessionTable
from broker.store import open_store
from broker.writer import StoreWriter
from computenet.address import Address
from computenet.spec import JobSpec
from computenet.types import Placement, SiteId
from topology import Topology, default_topology, load_topology

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything the broker process is configured with, read once at the entry point."""

    listen: Address
    """Where to serve gRPC; port 0 picks a free port."""
    db_url: str = "sqlite:///computenet-broker.db"
    """SQLAlchemy URL of the store."""
    topology_path: Path | None = None
    """Topology YAML; None for the built-in national network."""
    metrics_listen: Address | None = None
    """Where to serve Prometheus metrics; None disables them."""
    suspect_after_s: float = 15.0
    """Seconds without a heartbeat before a site is suspect."""
    lost_after_s: float = 60.0
    """Seconds without a heartbeat before a site is lost; at least lease + skew margin."""
    heartbeat_interval_s: float = 2.0
    """How often agents are asked to send a heartbeat."""
    lease_s: float = 40.0
    """Agent lease, from the send time of the last heartbeat the broker answered."""
    clock_skew_margin_s: float = 5.0
    """Allowance between an agent's lease end and the broker's lost verdict."""
    stale_capacity_after_s: float = 60.0
    """Seconds of failing capacity probes before an alive site takes no new work."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Placement weights and prices."""
    placement_round_budget_s: float = 0.5
    """Time budget in seconds of one joint placement round over the pending queue; the live
    placement loop keeps the best assignment found within it."""
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(insecure=True))
    """TLS, tokens and limits; insecure (loopback only) unless configured."""
    rebalance: RebalanceSettings = field(default_factory=RebalanceSettings)
    """Scheduled rebalancing runs, this replica's lease holder name."""
    transport: ServerLimits = field(default_factory=ServerLimits)
    """Message size, keepalive and connection limits of the gRPC server."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Caps and backoff for jobs whose attempts fail to start."""


def _load_topology(path: Path | None) -> tuple[Topology, str]:
    if path is None:
        text = (resources.files("topology") / "data" / "china.yaml").read_text(encoding="utf-8")
        return default_topology(), text
    return load_topology(path), path.read_text(encoding="utf-8")


class Broker:
    """A running broker: gRPC server, store, registry and control loops."""

    def __init__(self, settings: BrokerSettings) -> None:
        if settings.lost_after_s < settings.lease_s + settings.clock_skew_margin_s:
            raise ValueError(
                f"lost_after_s ({settings.lost_after_s:g}) must be at least lease_s "
                f"({settings.lease_s:g}) + clock_skew_margin_s "
                f"({settings.clock_skew_margin_s:g})"
            )
        self.settings = settings
        self.topology, self._topology_yaml = _load_topology(settings.topology_path)
        self.metrics = BrokerMetrics()
        self.writer = StoreWriter(open_store(settings.db_url), submit_url=settings.db_url)
        self.hub = EventHub(self.writer.store.last_sequence())
        self.writer.on_events(self.hub.publish)
        self.registry = SiteRegistry(
            [(SiteId(s.id), s.name, s.province, s.side) for s in self.topology.sites],
            suspect_after_s=settings.suspect_after_s,
            lost_after_s=settings.lost_after_s,
            now_s=time.monotonic(),
            stale_capacity_after_s=settings.stale_capacity_after_s,
        )
        for record in self.writer.store.sites():
            self.registry.restore(
                record.site_id,
                drained=record.drained,
                report=report_from_json(record.report_json),
            )
        self.sessions = SessionTable()
        self.driver = JobDriver(self.writer, self.sessions, JobMachine(settings.retry))
        self.tracker = JobTracker(self.writer, self.driver)
        self.capacity = CapacityView(
            writer=self.writer, registry=self.registry, topology=self.topology
        )
        policy = Policy.default(settings.policy)
        self._placer = lambda spec, snap: place(spec, snap, policy)
        timing = LoopTiming(round_budget_s=settings.placement_round_budget_s)
        self.placement = PlacementLoop(
            writer=self.writer,
            registry=self.registry,
            capacity=self.capacity,
            driver=self.driver,
            policy=policy,
            timing=timing,
            on_decision=self.metrics.observe_decision,
        )
        self.liveness = LivenessLoop(
            registry=self.registry,
            sessions=self.sessions,
            tracker=self.tracker,
            placement=self.placement,
            every_s=timing.liveness_every_s,
        )
        self.writer.on_created(self.placement.adopt)
        self.writer.on_events(self.placement.observe)
        self.jobs = JobManager(
            writer=self.writer,
            hub=self.hub,
            topology=self.topology,
            driver=self.driver,
            pending_reasons=self.placement.pending_reasons,
        )
        self.rebalance = build_rebalance(
            db_url=settings.db_url,
            writer=self.writer,
            capacity=self.capacity,
            driver=self.driver,
            policy=policy,
            topology=self.topology,
            settings=settings.rebalance,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.server: BoundServer | None = None
        self.metrics_address: Address | None = None
        self.security = build_security(settings.security, settings.listen)

    async def plan(self, spec: JobSpec) -> Placement:
        """Where a spec would go now (dry run)."""
        return self._placer(spec, await self.capacity.snapshot())

    def servicers(self) -> Servicers:
        """The servicers of this broker."""
        return Servicers(
            site=SiteServicer(
                registry=self.registry,
                sessions=self.sessions,
                tracker=self.tracker,
                on_status=self.liveness.on_status_changes,
                capacity_changed=self.placement.capacity_changed,
                broker_epoch=uuid.uuid4().hex[:12],
                heartbeat_interval_s=min(
                    self.settings.heartbeat_interval_s, self.settings.suspect_after_s / 3
                ),
                lease_s=self.settings.lease_s,
                require_site_certificate=self.security.require_site_certificate,
            ),
            job=JobServicer(
                self.jobs,
                self.plan,
                max_page_bytes=page_bytes_for(self.settings.transport.max_message_bytes),
            ),
            federation=FederationServicer(
                registry=self.registry,
                sessions=self.sessions,
                writer=self.writer,
                topology=self.topology,
                topology_yaml=self._topology_yaml,
                on_status=self.liveness.on_status_changes,
            ),
            rebalance=RebalanceServicer(self.rebalance),
        )

    @property
    def agent_address(self) -> Address | None:
        """Where agents connect with mTLS (None: the client address, insecure mode)."""
        port = self.security.agent_port
        return port.bound if port is not None else None

    async def start(self) -> Address:
        """Start serving; returns the bound client address."""
        sec = self.security
        await self.rebalance.start()  # settles unfinished migrations before agents reconnect
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
            raise OSError(f"cannot listen on {self.settings.listen}: {exc}") from None
        if self.settings.metrics_listen is not None:
            port = self.metrics.serve(self.settings.metrics_listen)
            self.metrics_address = Address(self.settings.metrics_listen.host, port)
        self._tasks = [
            asyncio.create_task(self.placement.run(self._stop)),
            asyncio.create_task(self.liveness.run(self._stop)),
            asyncio.create_task(self._gauge_loop()),
        ]
        return self.server.address

    async def _gauge_loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = await self.writer.read(self.writer.store.count_by_state)
                self.metrics.set_jobs(Counter(counts))
                entries = self.registry.entries()
                self.metrics.set_sites(Counter(e.status for e in entries))
                self.metrics.set_stale_capacity(sum(e.capacity_stale for e in entries))
            except Exception:
                log.exception("metrics refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 5.0)

    async def stop(self) -> None:
        """Stop the loops and the server, then close the store."""
        self._stop.set()
        await asyncio.to_thread(self.rebalance.shutdown)
        if self.server is not None:
            await self.server.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.writer.close()


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
    if broker.agent_address is not None:
        print(f"agents on {broker.agent_address}", flush=True)
    if broker.metrics_address is not None:
        print(f"metrics on {broker.metrics_address}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await broker.stop()

"""Simulated site agents: many real Connect streams per process, speaking the agent's protocol.

Each simulated agent has its own channel (its own TCP connection, like a real agent), says
hello, reports its pools every heartbeat interval (jittered like the real agent's), acknowledges
dispatches, reports each attempt running and, after a fixed run time, succeeded, and answers
cancels and drains. Its capacity reports count the cards of its running attempts as in use, so
the broker sees capacity change as a real federation would. It keeps what a benchmark measures:
when each dispatch arrived and when each report was sent (wall clock, one machine).

This is an asyncio take on tests/support/scripted_agent.py (a thread pair per stream there),
so that one process holds hundreds of streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.synchronize
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from computenet import convert
from computenet.site_messages import (
    Ack,
    AgentMessage,
    AttemptStatus,
    CancelAttempt,
    Dispatch,
    Drain,
    Hello,
    JobEventReport,
    Welcome,
)
from computenet.types import CapacityReport, JobId, JobState, PoolCapacity, SiteId
from computenet.v1 import site_service_pb2_grpc as sg

CHANNEL_OPTIONS = (
    # One connection per agent, as real agents have: no subchannel shared between channels.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
)
JITTER = 0.2
"""Heartbeat spread, as the real agent's (`site_agent.runtime.jittered`)."""
BACKOFF_S = (0.2, 2.0)


@dataclass(frozen=True, slots=True)
class SiteShape:
    """What a simulated agent offers: its site's pools, CPU and memory from the topology."""

    site_id: str
    pools: tuple[tuple[str, int], ...]
    cpu_cores: float
    memory_gb: float


@dataclass(frozen=True, slots=True)
class WorkerArgs:
    """One worker process's share of the agents and how they behave."""

    address: str
    sites: tuple[SiteShape, ...]
    heartbeat_s: float
    run_s: float
    """How long each dispatched attempt 'runs' before it is reported succeeded."""
    connect_per_s: float = 100.0
    """Stream openings per second while starting, so 1,000 hellos do not land at once."""
    seed: int = 0


@dataclass
class WorkerResult:
    """What a worker process observed (times are wall-clock seconds)."""

    dispatches: list[tuple[str, int, float]] = field(default_factory=list)
    """(job id, attempt, received at)."""
    reports: list[tuple[str, float]] = field(default_factory=list)
    """(site id, sent at) of every capacity report."""
    sessions: int = 0
    stream_errors: dict[str, int] = field(default_factory=dict)
    job_events: int = 0
    cancels: int = 0
    connected_at_end: int = 0


@dataclass
class _Attempt:
    job_id: str
    attempt: int
    fencing_token: int
    pool: str
    cards: int
    cpu: float
    memory_gb: float
    finish: asyncio.TimerHandle | None = None


class SimAgent:
    """One site's simulated agent on its own channel; reconnects with backoff until stopped."""

    def __init__(self, shape: SiteShape, args: WorkerArgs, out: WorkerResult, rng: random.Random):
        self.shape = shape
        self._args = args
        self._out = out
        self._rng = rng
        self._epoch = uuid.uuid4().hex[:12]
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._queue: asyncio.Queue[AgentMessage] | None = None
        self._report_id = 0
        self.connected = False

    async def run(self, stop: asyncio.Event, welcomed: asyncio.Event) -> None:
        """Keep a stream up until `stop`; set `welcomed` at the first welcome."""
        delay = BACKOFF_S[0]
        async with grpc.aio.insecure_channel(self._args.address, options=CHANNEL_OPTIONS) as ch:
            stub = sg.SiteServiceStub(ch)  # type: ignore[no-untyped-call]
            while not stop.is_set():
                try:
                    await self._session(stub, stop, welcomed)
                    delay = BACKOFF_S[0]
                except grpc.aio.AioRpcError as exc:
                    name = exc.code().name
                    self._out.stream_errors[name] = self._out.stream_errors.get(name, 0) + 1
                finally:
                    self.connected = False
                    self._queue = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay * self._rng.uniform(0.8, 1.2))
                delay = min(BACKOFF_S[1], delay * 2)

    async def _session(
        self, stub: sg.SiteServiceStub, stop: asyncio.Event, welcomed: asyncio.Event
    ) -> None:
        call = stub.Connect()
        queue: asyncio.Queue[AgentMessage] = asyncio.Queue()
        self._queue = queue
        held = tuple(
            AttemptStatus(JobId(a.job_id), a.attempt, JobState.RUNNING)
            for a in self._attempts.values()
        )
        queue.put_nowait(Hello(SiteId(self.shape.site_id), "bench", self._epoch, "sim", held))
        tasks = [asyncio.create_task(self._write_loop(call, queue))]
        try:
            first = await call.read()
            if first is grpc.aio.EOF or not isinstance(
                convert.connect_response_from_proto(first), Welcome
            ):
                return
            self.connected = True
            self._out.sessions += 1
            welcomed.set()
            tasks.append(asyncio.create_task(self._heartbeat(stop)))
            tasks.append(asyncio.create_task(_cancel_on(stop, call)))
            while not stop.is_set():
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    return
                self._on_message(convert.connect_response_from_proto(msg))
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
        finally:
            for task in tasks:
                task.cancel()
            call.cancel()

    async def _write_loop(self, call: Any, queue: asyncio.Queue[AgentMessage]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):
            while True:
                message = await queue.get()
                if isinstance(message, CapacityReport):
                    self._out.reports.append((self.shape.site_id, time.time()))
                await call.write(convert.connect_request_to_proto(message))

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self._args.heartbeat_s
        while not stop.is_set():
            self._send(self._report())
            spread = self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval * spread)

    def _send(self, message: AgentMessage) -> None:
        if self._queue is not None:
            self._queue.put_nowait(message)

    def _report(self) -> CapacityReport:
        used: dict[str, int] = {}
        cpu = mem = 0.0
        for a in self._attempts.values():
            used[a.pool] = used.get(a.pool, 0) + a.cards
            cpu += a.cpu
            mem += a.memory_gb
        pools = tuple(
            PoolCapacity(m, n, n, min(n, used.get(m, 0)), min(n, used.get(m, 0)))
            for m, n in self.shape.pools
        )
        s = self.shape
        return CapacityReport(
            pools=pools,
            cpu_cores=s.cpu_cores,
            cpu_cores_free=max(0.0, s.cpu_cores - cpu),
            memory_gb=s.memory_gb,
            memory_gb_free=max(0.0, s.memory_gb - mem),
            federation_cpu_cores=cpu,
            federation_memory_gb=mem,
        )

    def _on_message(self, message: object) -> None:
        if isinstance(message, Dispatch):
            self._out.dispatches.append((message.job_id, message.attempt, time.time()))
            self._start(message)
        elif isinstance(message, CancelAttempt):
            self._out.cancels += 1
            self._send(Ack(message.delivery_id))
            self._finish((message.job_id, message.attempt), JobState.CANCELLED)
        elif isinstance(message, Drain):
            self._send(Ack(message.delivery_id))

    def _start(self, d: Dispatch) -> None:
        self._send(Ack(d.delivery_id))
        key = (d.job_id, d.attempt)
        if key in self._attempts:
            return  # a resent dispatch: acknowledged again, started once
        spec = d.spec
        attempt = _Attempt(
            d.job_id,
            d.attempt,
            d.fencing_token,
            d.pool,
            spec.accelerators_total,
            spec.cpu_cores_total,
            spec.memory_gb_total,
        )
        self._attempts[key] = attempt
        self._event(attempt, JobState.RUNNING)
        loop = asyncio.get_running_loop()
        attempt.finish = loop.call_later(self._args.run_s, self._finish, key, JobState.SUCCEEDED)

    def _finish(self, key: tuple[str, int], state: JobState) -> None:
        attempt = self._attempts.pop(key, None)
        if attempt is None:
            return
        if attempt.finish is not None:
            attempt.finish.cancel()
        self._event(attempt, state)

    def _event(self, attempt: _Attempt, state: JobState) -> None:
        self._report_id += 1
        self._out.job_events += 1
        self._send(
            JobEventReport(
                report_id=self._report_id,
                job_id=JobId(attempt.job_id),
                attempt=attempt.attempt,
                fencing_token=attempt.fencing_token,
                state=state,
                exit_code=0,
                time_unix_ms=int(time.time() * 1000),
            )
        )


async def _cancel_on(stop: asyncio.Event, call: Any) -> None:
    await stop.wait()
    call.cancel()


async def run_agents(
    args: WorkerArgs,
    stop: multiprocessing.synchronize.Event,
    ready: multiprocessing.synchronize.Event,
) -> WorkerResult:
    """Run this share of agents until `stop` is set; set `ready` once every one was welcomed."""
    out = WorkerResult()
    rng = random.Random(args.seed)
    local_stop = asyncio.Event()
    agents = [SimAgent(shape, args, out, random.Random(rng.random())) for shape in args.sites]
    welcomed = [asyncio.Event() for _ in agents]
    tasks = []
    for agent, event in zip(agents, welcomed, strict=True):
        tasks.append(asyncio.create_task(agent.run(local_stop, event)))
        await asyncio.sleep(1.0 / args.connect_per_s)

    async def all_welcomed() -> None:
        await asyncio.gather(*(e.wait() for e in welcomed))
        ready.set()

    waiter = asyncio.create_task(all_welcomed())
    while not stop.is_set():
        await asyncio.sleep(0.2)
    out.connected_at_end = sum(1 for a in agents if a.connected)
    local_stop.set()
    waiter.cancel()
    await asyncio.wait(tasks, timeout=10)
    return out


def worker_main(
    args: WorkerArgs,
    stop: multiprocessing.synchronize.Event,
    ready: multiprocessing.synchronize.Event,
    results: Any,
) -> None:
    """Entry point of a worker process: run the agents, then put the result on `results`."""
    results.put(asyncio.run(run_agents(args, stop, ready)))

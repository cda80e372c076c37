"""All broker I/O: the channel, the Connect stream, heartbeats and reconnects, in agent events."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from computenet import convert
from computenet.errors import ComputeNetError, NotLeaderError
from computenet.site_messages import (
    Ack,
    AgentMessage,
    AttemptStatus,
    CancelAttempt,
    Dispatch,
    Drain,
    Heartbeat,
    Hello,
    JobEventReport,
    LeaseRenewal,
    UnreadableDispatch,
    Welcome,
)
from computenet.status import error_from_rpc_error
from computenet.tls import channel_options, site_channel_credentials
from computenet.types import CapacityReport, JobId, SiteId
from computenet.v1 import site_service_pb2 as sp
from computenet.v1 import site_service_pb2_grpc as sg
from site_agent.brokers import BrokerRotation, Step
from site_agent.events import (
    BrokerAcked,
    CancelReceived,
    Connected,
    Connecting,
    Disconnected,
    DispatchReceived,
    DrainReceived,
    Event,
    LeaseRenewed,
    RefuseWelcome,
    SendHello,
)
from site_agent.records import Report
from site_agent.runtime import AgentRuntime, jittered, wait_or_stop

log = logging.getLogger(__name__)

KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
PROBE_SHARE = 0.75
SILENT_HEARTBEATS = 4
"""A welcomed stream on which nothing came back for this many heartbeat intervals (at least
MIN_SILENCE_S) is given up: the broker is frozen or cut off behind a connection that stays
open, and another replica may lead by now. The lease is kept apart: it ends attempts on its
own schedule whatever the stream does."""
MIN_SILENCE_S = 8.0
NOT_LEADER_RETRY_S = 1.0
"""Between rounds in which a replica answered NOT_LEADER: the pace of retries while replicas
elect a leader (no doubling backoff, which would overshoot the election by seconds)."""
"""Share of a heartbeat interval a capacity probe may take before the beat goes without it."""
SENT_TIMES_KEPT = 1024
"""Heartbeat send times remembered for renewals; older ones can no longer extend the lease."""
REJECTING_CODES = frozenset(
    {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
)


class SiteRejectedError(ComputeNetError):
    """The broker does not accept this site (not in its topology, or not allowed)."""

    reason = "SITE_REJECTED"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """How the agent reaches its broker."""

    targets: tuple[str, ...]
    """Broker addresses (replicas of one cluster), tried in this order."""
    site_id: str
    agent_version: str
    epoch: str
    executor_kind: str
    heartbeat_interval_s: float = 5.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    credentials: grpc.ChannelCredentials | None = None
    """mTLS credentials naming the site; None for a plaintext (loopback) broker."""
    server_name: str | None = None
    """Name checked in the broker certificate if not the dialled host."""
    checkpoints: bool = False
    """True if the site sends and receives checkpoints of moved jobs; announced in the hello."""


def open_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    server_name: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel to the broker: mTLS when credentials are given, else plaintext."""
    opts = [*options, *channel_options(server_name)]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=opts)
    return grpc.aio.secure_channel(target, credentials, options=opts)


@dataclass(slots=True)
class _Outcome:
    """How one stream went, filled in as it goes (an error may end it at any point)."""

    welcomed: bool = False
    refused: RefuseWelcome | None = None
    silent: bool = False


@dataclass(slots=True)
class _Heard:
    """When the broker last sent anything on the current stream (event loop time)."""

    at: float


class BrokerLink:
    """Keeps one Connect stream up to the leading broker replica (following it from replica to
    replica, reconnecting with backoff) and translates the stream to and from events."""

    def __init__(
        self,
        settings: LinkSettings,
        runtime: AgentRuntime,
        capacity: Callable[[], Awaitable[CapacityReport]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._capacity = capacity
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[sp.ConnectRequest] | None = None
        self._sequence = itertools.count(1)
        self._sent_mono_ms: dict[int, int] = {}
        self._probe: asyncio.Future[CapacityReport] | None = None
        self._refusal: RefuseWelcome | None = None
        self.sessions = 0
        self.last_capacity_error = ""
        runtime.outbox = self

    # --- outbox (called by the runtime) ---------------------------------------------------

    def send_hello(self, hello: SendHello) -> None:
        """Queue the hello for the stream being opened."""
        s = self._settings
        attempts = tuple(AttemptStatus(JobId(j), a, st) for j, a, st in hello.attempts)
        sequence = self._next_sequence()
        self._put(
            Hello(
                SiteId(s.site_id),
                s.agent_version,
                s.epoch,
                s.executor_kind,
                attempts,
                sequence,
                checkpoints=s.checkpoints,
            )
        )

    def _next_sequence(self) -> int:
        """A fresh heartbeat sequence number, its send time noted (taken before the send, so a
        lease counted from it ends no later than one counted from the real send)."""
        sequence = next(self._sequence)
        self._sent_mono_ms[sequence] = self._runtime.mono_ms()
        if len(self._sent_mono_ms) > SENT_TIMES_KEPT:
            del self._sent_mono_ms[min(self._sent_mono_ms)]
        return sequence

    def send_ack(self, delivery_id: int) -> None:
        """Queue an acknowledgement of a delivery."""
        self._put(Ack(delivery_id))

    def send_report(self, report: Report) -> None:
        """Queue a job event report."""
        self._put(
            JobEventReport(
                report_id=report.report_id,
                job_id=JobId(report.job_id),
                attempt=report.attempt,
                fencing_token=report.fencing_token,
                state=report.state,
                exit_code=report.exit_code,
                message=report.message,
                time_unix_ms=report.time_unix_ms,
                launch_failed=report.launch_failed,
                checkpoint_ref=report.checkpoint_ref,
                checkpoint_bytes=report.checkpoint_bytes,
            )
        )

    def refuse_welcome(self, refusal: RefuseWelcome) -> None:
        """Note the core's refusal of the welcome being handled; the session then ends."""
        self._refusal = refusal

    def _put(self, message: AgentMessage) -> None:
        if self._queue is None:
            log.debug("no stream; dropped %s", type(message).__name__)
            return
        self._queue.put_nowait(convert.connect_request_to_proto(message))

    # --- connection loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set; raise SiteRejectedError if the broker refuses us.

        The configured addresses are tried in turn (a replica that is down or does not lead
        sends the agent to the next one, or to the leader it names), with the backoff waited
        only after a whole round of them failed.
        """
        s = self._settings
        rotation = BrokerRotation(s.targets)
        delay = s.backoff_initial_s
        electing = False  # a replica of this round answered NOT_LEADER: a leader is coming
        while not stop.is_set():
            target = rotation.target
            outcome = _Outcome()
            try:
                await self._connect(target, outcome, stop)
                step, reason = self._after_end(rotation, target, outcome)
            except grpc.aio.AioRpcError as exc:
                if stop.is_set():
                    break
                step, reason = self._after_error(rotation, target, outcome, exc)
            finally:
                self._queue = None
                self._refusal = None
                now = self._runtime.clock_ms()
                await self._event(Disconnected(self._runtime.stimulus_id("disconnect"), now))
            if stop.is_set():
                break
            if outcome.welcomed:
                delay = s.backoff_initial_s
            if step.target != target:
                log.info("broker switch from=%s to=%s reason=%s", target, step.target, reason)
            electing = electing or reason == "not_leader"
            if step.backoff:
                if electing:
                    # replicas are up and electing: a new leader is a lease away, so keep
                    # trying at a steady pace instead of backing off past its election
                    wait_s = max(NOT_LEADER_RETRY_S, s.backoff_initial_s)
                else:
                    wait_s, delay = delay, min(s.backoff_max_s, delay * 2)
                log.debug("broker round failed; retry_in_s=%.1f", wait_s)
                await wait_or_stop(stop, jittered(wait_s, self._rng))
                electing = False

    def _after_end(
        self, rotation: BrokerRotation, target: str, outcome: _Outcome
    ) -> tuple[Step, str]:
        """Where to go after a stream that ended without an error."""
        if outcome.refused is not None:
            log.warning(
                "broker refused target=%s leader_epoch=%d highest_leader_epoch=%d: "
                "it leads under an older epoch than a broker that already welcomed this agent",
                target,
                outcome.refused.leader_epoch,
                outcome.refused.highest_leader_epoch,
            )
            return rotation.failed(), "stale_leader_epoch"
        if outcome.silent:
            return rotation.failed(), "silent"
        if outcome.welcomed:
            log.warning("broker closed the stream target=%s", target)
            return rotation.retry(), "closed"
        return rotation.failed(), "closed_before_welcome"

    def _after_error(
        self,
        rotation: BrokerRotation,
        target: str,
        outcome: _Outcome,
        exc: grpc.aio.AioRpcError,
    ) -> tuple[Step, str]:
        """Where to go after a stream that failed; raise SiteRejectedError if it refused us."""
        code = exc.code()
        if code in REJECTING_CODES:
            raise SiteRejectedError(
                f"broker {target} rejected site {self._settings.site_id!r}: "
                f"{code.name}: {exc.details()}"
            ) from None
        error = error_from_rpc_error(exc)
        if isinstance(error, NotLeaderError):
            # expected while replicas elect a leader: the switch line says it all
            return rotation.failed(error.leader_agent_address), "not_leader"
        log.warning(
            "broker stream failed target=%s code=%s detail=%s", target, code.name, exc.details()
        )
        if code is grpc.StatusCode.UNAVAILABLE or not outcome.welcomed:
            return rotation.failed(), code.name.lower()
        return rotation.retry(), code.name.lower()

    async def _connect(self, target: str, outcome: _Outcome, stop: asyncio.Event) -> None:
        s = self._settings
        # a channel per try: a fresh one dials at once, where a reused one might still be
        # waiting out gRPC's own reconnect backoff towards a replica that was down
        async with open_channel(target, s.credentials, s.server_name, KEEPALIVE_OPTIONS) as channel:
            await self._session(sg.SiteServiceStub(channel), target, outcome, stop)

    async def _session(
        self, stub: sg.SiteServiceStub, target: str, outcome: _Outcome, stop: asyncio.Event
    ) -> None:
        call = stub.Connect()
        silence: asyncio.Task[bool] | None = None
        queue: asyncio.Queue[sp.ConnectRequest] = asyncio.Queue()
        self._queue = queue
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._write_loop(call, queue)),
            asyncio.create_task(_cancel_on(stop, call)),
        ]
        try:
            await self._event(Connecting(self._runtime.stimulus_id("connect")))
            first = await call.read()
            if first is grpc.aio.EOF or stop.is_set():
                return
            welcome = convert.connect_response_from_proto(first)
            if not isinstance(welcome, Welcome):
                log.error("broker answered hello with %s, not welcome", type(welcome).__name__)
                return
            outcome.refused = await self._welcomed(target, welcome)
            if outcome.refused is not None:
                return
            outcome.welcomed = True
            self.sessions += 1
            heard = _Heard(asyncio.get_running_loop().time())
            tasks.append(asyncio.create_task(self._heartbeat(welcome, stop)))
            silence = asyncio.create_task(self._watch_silence(target, welcome, heard, call))
            tasks.append(silence)
            while not stop.is_set():
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    break
                heard.at = asyncio.get_running_loop().time()
                await self._on_message(msg)
        except asyncio.CancelledError:
            if silence is not None and silence.done() and not silence.cancelled():
                outcome.silent = True  # the watch gave the stream up: try the next replica
                return
            if not stop.is_set():
                raise
        finally:
            self._queue = None
            for task in tasks:
                task.cancel()
            call.cancel()

    async def _watch_silence(
        self, target: str, welcome: Welcome, heard: _Heard, call: grpc.aio.StreamStreamCall
    ) -> bool:
        """Cancel the stream once the broker has been silent too long; True if it did."""
        interval = welcome.heartbeat_interval_s or self._settings.heartbeat_interval_s
        limit = max(SILENT_HEARTBEATS * interval, MIN_SILENCE_S)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(limit / 4)
            silent_s = loop.time() - heard.at
            if silent_s > limit:
                log.warning(
                    "broker silent target=%s silent_s=%.1f: giving the stream up", target, silent_s
                )
                call.cancel()
                return True

    async def _welcomed(self, target: str, welcome: Welcome) -> RefuseWelcome | None:
        """Hand the welcome to the core; the refusal if it leads under a stale epoch."""
        sid = self._runtime.stimulus_id("welcome")
        lease_ms = int(welcome.lease_s * 1000)
        self._refusal = None
        connected = Connected(sid, self._runtime.clock_ms(), lease_ms, welcome.leader_epoch)
        await self._event(connected)
        if self._refusal is not None:
            return self._refusal
        log.info(
            "connected target=%s broker_epoch=%s leader_epoch=%d heartbeat_s=%.1f lease_s=%.1f",
            target,
            welcome.broker_epoch,
            welcome.leader_epoch,
            welcome.heartbeat_interval_s,
            welcome.lease_s,
        )
        renewed = self._renewed(welcome.heartbeat_sequence, welcome.lease_s)
        if renewed is not None:
            await self._event(renewed)
        return None

    async def _write_loop(self, call: grpc.aio.StreamStreamCall, queue: asyncio.Queue) -> None:
        try:
            while True:
                await call.write(await queue.get())
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            log.debug("stream write ended error=%s", exc)

    async def _heartbeat(self, welcome: Welcome, stop: asyncio.Event) -> None:
        """A heartbeat now and every interval, whatever the capacity probe does."""
        interval = welcome.heartbeat_interval_s or self._settings.heartbeat_interval_s
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            began = loop.time()
            capacity, error = await self._probe_capacity(timeout_s=interval * PROBE_SHARE)
            self._put(Heartbeat(self._next_sequence(), capacity, error))
            # the probe's time counts against the interval, so beats keep their pace
            await wait_or_stop(stop, jittered(interval, self._rng) - (loop.time() - began))

    async def _probe_capacity(self, *, timeout_s: float) -> tuple[CapacityReport | None, str]:
        """The capacity now, or None and why not; a hung probe is waited on, never doubled."""
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._capacity())
        done, _ = await asyncio.wait({self._probe}, timeout=timeout_s)
        if not done:
            return None, self._probe_failed(f"capacity probe still running after {timeout_s:g}s")
        probe, self._probe = self._probe, None
        try:
            report = probe.result()
        except Exception as exc:
            return None, self._probe_failed(f"capacity probe failed: {exc}")
        if self.last_capacity_error:
            log.info("capacity probe works again")
            self.last_capacity_error = ""
        return report, ""

    def _probe_failed(self, error: str) -> str:
        if error != self.last_capacity_error:
            log.warning("capacity probe failing error=%s", error)
        self.last_capacity_error = error
        return error

    def _renewed(self, sequence: int, lease_s: float) -> LeaseRenewed | None:
        sent = self._sent_mono_ms.get(sequence)
        if sent is None:
            if sequence:
                log.debug("renewal of an unknown heartbeat sequence=%d", sequence)
            return None
        return LeaseRenewed(
            self._runtime.stimulus_id("renewal"),
            self._runtime.clock_ms(),
            self._runtime.mono_ms(),
            sent,
            int(lease_s * 1000),
        )

    async def _on_message(self, msg: sp.ConnectResponse) -> None:
        event = self._event_from(msg)
        if event is not None:
            await self._event(event)

    def _event_from(self, msg: sp.ConnectResponse) -> Event | None:
        kind = msg.WhichOneof("msg")
        message = convert.connect_response_from_proto(msg)
        now = self._runtime.clock_ms()
        sid = self._runtime.stimulus_id(kind or "unknown")
        if isinstance(message, Dispatch | UnreadableDispatch):
            return dispatch_received(message, sid, now)
        if isinstance(message, CancelAttempt):
            m = message
            return CancelReceived(
                sid, m.delivery_id, m.job_id, m.attempt, m.reason, m.checkpoint, now
            )
        if isinstance(message, Drain):
            return DrainReceived(sid, message.delivery_id, message.drain)
        if isinstance(message, Ack):
            return BrokerAcked(sid, message.id, now)
        if isinstance(message, LeaseRenewal):
            return self._renewed(message.heartbeat_sequence, message.lease_s)
        log.warning("ignoring broker message kind=%s", kind)
        return None

    async def _event(self, event: Event) -> None:
        await self._runtime.handle(event)


async def _cancel_on(stop: asyncio.Event, call: grpc.aio.StreamStreamCall) -> None:
    await stop.wait()
    call.cancel()


async def probe_broker(
    target: str,
    timeout_s: float,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str | None = None,
) -> None:
    """Check the broker answers at `target` within `timeout_s`; raise ConnectionError if not."""
    async with open_channel(target, credentials, server_name) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=timeout_s)
        except TimeoutError:
            raise ConnectionError(f"broker {target} unreachable after {timeout_s:g}s") from None


def dispatch_received(
    message: Dispatch | UnreadableDispatch, stimulus_id: str, now_ms: int
) -> DispatchReceived:
    """The event of a dispatch; one whose spec did not decode carries why, with no spec."""
    if isinstance(message, UnreadableDispatch):
        spec, reason, restore_ref = None, message.reason, ""
    else:
        # run it in the pool the broker's ledger holds its cards in
        spec, reason = message.spec.in_pool(message.pool), ""
        restore_ref = message.restore_ref
    return DispatchReceived(
        stimulus_id=stimulus_id,
        delivery_id=message.delivery_id,
        job_id=message.job_id,
        attempt=message.attempt,
        fencing_token=message.fencing_token,
        spec=spec,
        tenant=message.tenant,
        now_ms=now_ms,
        invalid_reason=reason,
        restore_ref=restore_ref,
    )


def credentials_for(tls: Any) -> grpc.ChannelCredentials | None:
    """mTLS credentials from the agent's `tls` config section (None: plaintext)."""
    if tls is None:
        return None
    return site_channel_credentials(tls.ca, tls.cert, tls.key)

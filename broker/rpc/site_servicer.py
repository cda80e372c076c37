"""SiteService over gRPC: the broker's side of each agent's Connect stream."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import grpc

from broker.jobflow.tracker import AttemptReport, JobTracker
from broker.rpc.errors import translate_errors
from broker.security.identity import check_hello_site
from broker.sites.registry import SiteRegistry, StatusChange
from broker.sites.sessions import AgentSession, OutAck, OutDispatch, SessionTable
from computenet import convert
from computenet.errors import UnavailableError
from computenet.site_messages import Hello, LeaseRenewal, Welcome
from computenet.types import CapacityReport, JobState, SiteId
from computenet.v1 import site_service_pb2 as pb
from computenet.v1 import site_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0


class SiteServicer(pb_grpc.SiteServiceServicer):
    """Accepts agents of the served topology and runs one session per connected site."""

    def __init__(
        self,
        *,
        registry: SiteRegistry,
        sessions: SessionTable,
        tracker: JobTracker,
        on_status: Callable[[list[StatusChange]], Awaitable[None]],
        capacity_changed: Callable[[], None],
        broker_epoch: str,
        heartbeat_interval_s: float,
        lease_s: float,
        require_site_certificate: bool = True,
        leader_epoch: int = 0,
        leading: Callable[[], bool] = lambda: True,
        not_leader: Callable[[], Exception] | None = None,
    ) -> None:
        """`leading` is asked before anything goes to an agent: a replica whose term ran out
        renews no lease and sends nothing more, and ends the stream with `not_leader()`."""
        self._registry = registry
        self._sessions = sessions
        self._tracker = tracker
        self._on_status = on_status
        self._capacity_changed = capacity_changed
        self._require_certificate = require_site_certificate
        self._leading = leading
        self._not_leader = not_leader
        self._welcome = Welcome(
            broker_epoch=broker_epoch,
            heartbeat_interval_s=heartbeat_interval_s,
            lease_s=lease_s,
            leader_epoch=leader_epoch,
        )

    def _refuse_if_not_leading(self) -> None:
        if not self._leading():
            if self._not_leader is not None:
                raise self._not_leader()
            raise UnavailableError("this broker no longer leads", 1.0)

    @translate_errors
    async def Connect(
        self,
        request_iterator: AsyncIterator[pb.ConnectRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ConnectResponse]:
        self._refuse_if_not_leading()
        hello = await self._read_hello(request_iterator, context)
        self._refuse_if_not_leading()
        site_id = SiteId(hello.site_id)
        session = self._sessions.open(site_id, hello.epoch)
        change = self._registry.connected(
            site_id,
            now_s=time.monotonic(),
            executor=hello.executor,
            version=hello.agent_version,
            epoch=hello.epoch,
            checkpoints=hello.checkpoints,
        )
        log.info(
            "agent connected site=%s epoch=%s checkpoints=%s",
            site_id,
            hello.epoch,
            hello.checkpoints,
        )
        if change is not None:
            await self._on_status([change])
        # the welcome renews the lease from the hello's send time, as a renewal would
        welcome = replace(self._welcome, heartbeat_sequence=hello.heartbeat_sequence)
        yield convert.connect_response_to_proto(welcome)
        await self._tracker.resume_site(session, hello.attempts)
        reader = asyncio.create_task(self._read_loop(session, request_iterator))
        try:
            while True:
                message = await session.next_message()
                if message is None or not self._leading():
                    break
                yield convert.connect_response_to_proto(message)
            self._refuse_if_not_leading()
        finally:
            reader.cancel()
            if self._sessions.end(session):
                self._registry.disconnected(site_id)
            log.info("agent disconnected site=%s", site_id)

    async def _read_hello(
        self,
        request_iterator: AsyncIterator[pb.ConnectRequest],
        context: grpc.aio.ServicerContext,
    ) -> Hello:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT_S)
        except (TimeoutError, StopAsyncIteration):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected hello first")
        if first.WhichOneof("msg") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be hello")
        hello = convert.hello_from_proto(first.hello)
        # The site is who its certificate says, never what the message body claims.
        check_hello_site(hello.site_id, context, require_certificate=self._require_certificate)
        if hello.site_id not in self._registry:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"site {hello.site_id!r} is not a site of the broker's topology",
            )
        return hello

    async def _read_loop(
        self, session: AgentSession, request_iterator: AsyncIterator[pb.ConnectRequest]
    ) -> None:
        try:
            async for message in request_iterator:
                await self._handle(session, message)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            pass
        except Exception:
            log.exception("agent stream failed site=%s", session.site_id)
        finally:
            session.close()

    async def _handle(self, session: AgentSession, message: pb.ConnectRequest) -> None:
        kind = message.WhichOneof("msg")
        if kind == "heartbeat":
            beat = convert.heartbeat_from_proto(message.heartbeat)
            if not self._leading():  # a deposed leader renews nothing: end the stream instead
                session.close()
                return
            await self._heard(session, beat.capacity, beat.capacity_error)
            # answered on the stream it came by, after the registry counted the site alive:
            # the agent's lease then ends before this heartbeat's lost verdict could come
            session.send(LeaseRenewal(beat.sequence, self._welcome.lease_s))
        elif kind == "capacity":  # agents that predate heartbeats: liveness only, no lease
            await self._heard(session, convert.capacity_report_from_proto(message.capacity), "")
        elif kind == "job_event":
            event = convert.job_event_report_from_proto(message.job_event)
            state = event.state
            if state is not None:
                await self._tracker.report(
                    AttemptReport(
                        site_id=session.site_id,
                        job_id=event.job_id,
                        attempt=event.attempt,
                        state=state,
                        exit_code=event.exit_code
                        if state in (JobState.SUCCEEDED, JobState.FAILED)
                        else None,
                        message=event.message,
                        launch_failed=event.launch_failed,
                        checkpoint_ref=event.checkpoint_ref,
                        checkpoint_bytes=event.checkpoint_bytes,
                    )
                )
            session.send(OutAck(event.report_id))
        elif kind == "ack":
            delivery = session.acknowledged(message.ack.id)
            if isinstance(delivery, OutDispatch):
                await self._tracker.dispatch_acknowledged(session.site_id, delivery)

    async def _heard(
        self, session: AgentSession, capacity: CapacityReport | None, error: str
    ) -> None:
        entry = self._registry.get(session.site_id)
        previous, was_stale = entry.report, entry.capacity_stale
        change = self._registry.heartbeat(
            session.site_id,
            capacity,
            error=error,
            now_s=time.monotonic(),
            now_unix_ms=int(time.time() * 1000),
        )
        if entry.capacity_stale and not was_stale:
            log.warning("capacity stale site=%s error=%s", session.site_id, entry.capacity_error)
        elif was_stale and not entry.capacity_stale:
            log.info("capacity fresh again site=%s", session.site_id)
        if change is not None:
            await self._on_status([change])
        if capacity is not None and (capacity != previous or was_stale):
            self._capacity_changed()

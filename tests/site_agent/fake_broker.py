"""A scripted SiteService double on 127.0.0.1:0: the test plays the broker's side of each stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import grpc.aio

from computenet.convert import spec_to_proto
from computenet.errors import NotLeaderError
from computenet.spec import JobSpec
from computenet.status import error_to_status
from computenet.v1 import site_service_pb2 as sp
from computenet.v1 import site_service_pb2_grpc as sg

WAIT_S = 20.0


@dataclass
class Session:
    """One Connect stream as the broker sees it."""

    inbox: asyncio.Queue[sp.ConnectRequest] = field(default_factory=asyncio.Queue)
    outbox: asyncio.Queue[sp.ConnectResponse | None] = field(default_factory=asyncio.Queue)
    renew: bool = True
    """Answer every heartbeat with a lease renewal, as the broker does; False: a one-way cut."""
    lease_s: float = 30.0
    hello_sequence: int = 0

    def received(self, msg: sp.ConnectRequest) -> None:
        """Take one message from the agent, answering heartbeats like the broker."""
        kind = msg.WhichOneof("msg")
        if kind == "hello":
            self.hello_sequence = msg.hello.heartbeat_sequence
        elif kind == "heartbeat" and self.renew:
            renewal = sp.LeaseRenewal(
                heartbeat_sequence=msg.heartbeat.sequence, lease_s=self.lease_s
            )
            self.send(lease=renewal)
        self.inbox.put_nowait(msg)

    async def next(
        self, kind: str, skip: tuple[str, ...] = ("capacity", "heartbeat")
    ) -> sp.ConnectRequest:
        """The next message of `kind`, skipping heartbeats; fails on anything else."""
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), WAIT_S)
            got = msg.WhichOneof("msg")
            if got == kind:
                return msg
            assert got in (*skip, "heartbeat"), f"expected {kind}, got {msg}"

    def send(self, **kwargs: object) -> None:
        """Queue one ConnectResponse (welcome=..., dispatch=..., ...)."""
        self.outbox.put_nowait(sp.ConnectResponse(**kwargs))  # type: ignore[arg-type]

    def welcome(
        self, heartbeat_s: float = 0.2, lease_s: float = 30.0, leader_epoch: int = 0
    ) -> None:
        """Answer the hello (renewing the lease from its send time)."""
        self.lease_s = lease_s
        welcome = sp.Welcome(
            broker_epoch="b1",
            heartbeat_interval_s=heartbeat_s,
            lease_s=lease_s,
            heartbeat_sequence=self.hello_sequence,
            leader_epoch=leader_epoch,
        )
        self.send(welcome=welcome)

    def dispatch(
        self, delivery_id: int, job_id: str, attempt: int, token: int, spec: JobSpec
    ) -> None:
        """Send a dispatch."""
        msg = sp.Dispatch(
            delivery_id=delivery_id,
            job_id=job_id,
            attempt=attempt,
            fencing_token=token,
            spec=spec_to_proto(spec),
            tenant="t1",
        )
        self.send(dispatch=msg)

    def ack(self, report_id: int) -> None:
        """Acknowledge a job event report."""
        self.send(ack=sp.Ack(id=report_id))

    def drop(self) -> None:
        """End the stream from the broker side."""
        self.outbox.put_nowait(None)


class FakeBroker(sg.SiteServiceServicer):
    """Hands every new stream to the test through `sessions`."""

    def __init__(self) -> None:
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.reject: grpc.StatusCode | None = None

    async def Connect(
        self, request_iterator: AsyncIterator[sp.ConnectRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sp.ConnectResponse]:
        if self.reject is not None:
            await context.abort(self.reject, "site 'nowhere' is not in the topology")
        session = Session()
        self.sessions.put_nowait(session)

        async def pump() -> None:
            async for msg in request_iterator:
                session.received(msg)

        reader = asyncio.create_task(pump())
        try:
            while (msg := await session.outbox.get()) is not None:
                yield msg
        finally:
            reader.cancel()

    async def next_session(self) -> Session:
        """Wait for the agent to open a stream."""
        return await asyncio.wait_for(self.sessions.get(), WAIT_S)


class FollowerBroker(sg.SiteServiceServicer):
    """A replica that does not lead: aborts every stream with NotLeaderError naming the leader."""

    def __init__(self, leader_agent_address: str = "") -> None:
        self.leader_agent_address = leader_agent_address
        self.streams = 0

    async def Connect(
        self, request_iterator: AsyncIterator[sp.ConnectRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sp.ConnectResponse]:
        self.streams += 1
        error = NotLeaderError(
            "this broker replica does not lead",
            leader_agent_address=self.leader_agent_address,
        )
        await context.abort_with_status(error_to_status(error))
        yield sp.ConnectResponse()  # never reached; makes this a response stream


async def serve(servicer: sg.SiteServiceServicer) -> tuple[grpc.aio.Server, str]:
    """Serve a SiteService servicer on 127.0.0.1:0; returns the server and its address."""
    server = grpc.aio.server()
    sg.add_SiteServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def start_fake_broker() -> tuple[grpc.aio.Server, FakeBroker, str]:
    """Serve a FakeBroker on 127.0.0.1:0; returns the server, the double and its address."""
    fake = FakeBroker()
    server, address = await serve(fake)
    return server, fake, address

"""A scripted site agent speaking the real Connect protocol, for broker tests that drive a site."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import grpc

from computenet.v1 import site_service_pb2 as pb
from computenet.v1 import site_service_pb2_grpc as pb_grpc
from computenet.v1 import types_pb2

_END = object()


class ScriptedAgent:
    """Opens a Connect stream as `site_id`; the test sends messages and reads the broker's."""

    def __init__(
        self,
        address: str,
        site_id: str,
        *,
        epoch: str = "test",
        credentials: grpc.ChannelCredentials | None = None,
        attempts: Sequence[tuple[str, int, int]] = (),
        hello_sequence: int = 0,
    ) -> None:
        """`attempts` are what the hello lists: (job id, attempt, wire job state)."""
        self.site_id = site_id
        self._channel = (
            grpc.secure_channel(address, credentials)
            if credentials is not None
            else grpc.insecure_channel(address)
        )
        self._outbox: queue.Queue[object] = queue.Queue()
        self.inbox: queue.Queue[pb.ConnectResponse | BaseException] = queue.Queue()
        self.ended = threading.Event()
        """Set when the stream is over, whoever ended it."""
        self._report_id = 0
        stub = pb_grpc.SiteServiceStub(self._channel)
        self._outbox.put(
            pb.ConnectRequest(
                hello=pb.Hello(
                    site_id=site_id,
                    agent_version="test",
                    epoch=epoch,
                    executor="test",
                    attempts=[
                        pb.AttemptStatus(job_id=j, attempt=a, state=st)  # type: ignore[arg-type]
                        for j, a, st in attempts
                    ],
                    heartbeat_sequence=hello_sequence,
                )
            )
        )
        self._call = stub.Connect(self._requests())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[pb.ConnectRequest]:
        while True:
            item = self._outbox.get()
            if item is _END:
                return
            assert isinstance(item, pb.ConnectRequest)
            yield item

    def _read(self) -> None:
        try:
            for message in self._call:
                self.inbox.put(message)
        except grpc.RpcError as exc:
            self.inbox.put(exc)
        finally:
            self.ended.set()

    def next(self, kind: str, timeout_s: float = 10.0) -> pb.ConnectResponse:
        """The next broker message of this kind (others are skipped); fails on timeout or error."""
        while True:
            item = self.inbox.get(timeout=timeout_s)
            if isinstance(item, BaseException):
                raise item
            if item.WhichOneof("msg") == kind:
                return item

    def heartbeat(self, sequence: int, model: str = "", total: int = 0, *, error: str = "") -> None:
        """Send a heartbeat: with a capacity report of `total` cards of `model`, or with `error`."""
        beat = pb.Heartbeat(sequence=sequence, capacity_error=error)
        if model:
            beat.capacity.CopyFrom(
                pb.CapacityReport(
                    pools=[types_pb2.PoolCapacity(model=model, total=total, allocatable=total)],
                    cpu_cores=64,
                    cpu_cores_free=64,
                    memory_gb=512,
                    memory_gb_free=512,
                )
            )
        self._outbox.put(pb.ConnectRequest(heartbeat=beat))

    def report_capacity(
        self,
        model: str,
        total: int,
        *,
        cpu: float = 64,
        mem: float = 512,
        price_cny_per_kwh: float = 0.0,
        carbon_kg_per_kwh: float = 0.0,
    ) -> None:
        """Send a capacity report (the heartbeat), with a live power price and carbon if given."""
        self._outbox.put(
            pb.ConnectRequest(
                capacity=pb.CapacityReport(
                    pools=[types_pb2.PoolCapacity(model=model, total=total, allocatable=total)],
                    cpu_cores=cpu,
                    cpu_cores_free=cpu,
                    memory_gb=mem,
                    memory_gb_free=mem,
                    price_cny_per_kwh=price_cny_per_kwh,
                    carbon_kg_per_kwh=carbon_kg_per_kwh,
                )
            )
        )

    def ack(self, delivery_id: int) -> None:
        """Acknowledge a dispatch, cancel or drain."""
        self._outbox.put(pb.ConnectRequest(ack=pb.Ack(id=delivery_id)))

    def job_event(self, job_id: str, attempt: int, state: int, exit_code: int = 0) -> int:
        """Report an attempt's state; returns the report id."""
        self._report_id += 1
        self._outbox.put(
            pb.ConnectRequest(
                job_event=pb.JobEventReport(
                    report_id=self._report_id,
                    job_id=job_id,
                    attempt=attempt,
                    fencing_token=attempt,
                    state=state,  # type: ignore[arg-type]
                    exit_code=exit_code,
                )
            )
        )
        return self._report_id

    def close(self) -> None:
        """End the stream and the channel."""
        self._outbox.put(_END)
        self._call.cancel()
        self._channel.close()

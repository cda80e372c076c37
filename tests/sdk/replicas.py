"""Broker replica stand-ins on 127.0.0.1:0 for failover tests: refusing, hanging or serving ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from computenet.convert import cluster_status_to_proto, rebalance_run_to_proto
from computenet.errors import ComputeNetError
from computenet.rebalance_types import RebalanceRunInfo
from computenet.status import error_to_status
from computenet.types import ClusterStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2 as rebalance_pb
from computenet.v1 import rebalance_service_pb2_grpc as rebalance_grpc
from tests.sdk.fake_broker import FakeBroker

HANG_LIMIT_S = 30.0
"""Longest a hanging handler holds its thread if a test forgets to release it."""


class Refusing:
    """A replica that serves nothing: every call fails with `error` (a typed error sent with its
    details, or a bare status code), after hanging until `release` is set if `hang`."""

    def __init__(self, error: ComputeNetError | grpc.StatusCode, *, hang: bool = False) -> None:
        self.error = error
        self.hang = hang
        self.release = threading.Event()
        self.requests: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        if not name[:1].isupper():  # only RPC handlers are made up
            raise AttributeError(name)

        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            self.requests.append((name, request))
            if self.hang:
                self.release.wait(HANG_LIMIT_S)
            if isinstance(self.error, ComputeNetError):
                context.abort_with_status(error_to_status(self.error))
            context.abort(self.error, "replica refuses")

        return handler


class Serving(FakeBroker, rebalance_grpc.RebalanceServiceServicer):
    """The scripted broker stand-in, plus a cluster status and a rebalancing run to apply."""

    def __init__(self, cluster: ClusterStatus | None = None) -> None:
        super().__init__()
        self.cluster = cluster or ClusterStatus(leader=None)
        self.applied = 0

    def GetClusterStatus(self, request: fed_pb.GetClusterStatusRequest, context: Any) -> Any:
        return cluster_status_to_proto(self.cluster)

    def ApplyRebalance(self, request: rebalance_pb.ApplyRebalanceRequest, context: Any) -> Any:
        self.applied += 1
        run = RebalanceRunInfo(f"run-{self.applied}", "manual", False, 1, 2)
        return rebalance_pb.ApplyRebalanceResponse(run=rebalance_run_to_proto(run))

    def share_state_with(self, other: FakeBroker) -> None:
        """Read and write the same jobs and events as `other`, as replicas of one database do."""
        self.jobs, self.events, self.by_request_id = other.jobs, other.events, other.by_request_id


class Replaying(Serving):
    """A replica whose watches start from the first event whatever the client asks."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_after: list[int] = []

    def WatchJob(self, request: Any, context: Any) -> Iterator[Any]:
        self.asked_after.append(request.after_sequence)
        request.after_sequence = 0
        return super().WatchJob(request, context)


class Recorder(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records the name of every method called on a server, in order."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.methods.append(details.method.rsplit("/", 1)[-1])
        return continuation(details)


@dataclass
class Replica:
    """A started stand-in, the address it listens on and the methods it was called with."""

    servicer: Any
    address: str
    server: grpc.Server
    recorder: Recorder = field(repr=False)

    @property
    def methods(self) -> list[str]:
        return self.recorder.methods


def start_replica(servicer: Any) -> Replica:
    """Serve every broker service of `servicer` on 127.0.0.1 with an OS-chosen port."""
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[recorder])
    job_grpc.add_JobServiceServicer_to_server(servicer, server)
    fed_grpc.add_FederationServiceServicer_to_server(servicer, server)
    rebalance_grpc.add_RebalanceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return Replica(servicer, f"127.0.0.1:{port}", server, recorder)


def stop_replica(replica: Replica) -> None:
    """Release any hanging handler and stop the server."""
    if isinstance(replica.servicer, Refusing):
        replica.servicer.release.set()
    replica.server.stop(grace=None)

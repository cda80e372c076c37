"""Assembles the broker's gRPC server: ComputeNet services, health checking and reflection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from computenet.address import Address
from computenet.v1 import (
    accounting_service_pb2,
    accounting_service_pb2_grpc,
    federation_service_pb2,
    federation_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    rebalance_service_pb2,
    rebalance_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

SERVICE_NAMES: tuple[str, ...] = (
    site_service_pb2.DESCRIPTOR.services_by_name["SiteService"].full_name,
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    federation_service_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name,
    rebalance_service_pb2.DESCRIPTOR.services_by_name["RebalanceService"].full_name,
    accounting_service_pb2.DESCRIPTOR.services_by_name["AccountingService"].full_name,
)


@dataclass
class Servicers:
    """The servicer objects to mount (a generated base class answers UNIMPLEMENTED)."""

    site: site_service_pb2_grpc.SiteServiceServicer
    job: job_service_pb2_grpc.JobServiceServicer
    federation: federation_service_pb2_grpc.FederationServiceServicer
    rebalance: rebalance_service_pb2_grpc.RebalanceServiceServicer
    accounting: accounting_service_pb2_grpc.AccountingServiceServicer = field(
        default_factory=accounting_service_pb2_grpc.AccountingServiceServicer
    )
    """Usage, queue and tenants (the generated base answers UNIMPLEMENTED)."""


class BoundServer:
    """A started gRPC server with its bound address and health state."""

    def __init__(
        self, server: grpc.aio.Server, address: Address, health: health.aio.HealthServicer
    ):
        self.server = server
        self.address = address
        self._health = health

    async def stop(self, grace_s: float = 5.0) -> None:
        """Report NOT_SERVING, then stop accepting calls and let running ones finish."""
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(
    listen: Address,
    servicers: Servicers,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    extra: Sequence[Callable[[grpc.aio.Server], None]] = (),
    options: Sequence[tuple[str, int]] = (),
) -> BoundServer:
    """Create, bind and start the broker server; raises OSError if the address cannot be bound.

    `options` are gRPC server options (limits, keepalive); message sizes default to 4 MiB.
    """
    defaults = {
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.so_reuseport": 0,
    }
    # gRPC takes the first of repeated keys, so a default listed before an option would win
    merged = {**defaults, **dict(options)}
    server = grpc.aio.server(interceptors=list(interceptors), options=list(merged.items()))
    site_service_pb2_grpc.add_SiteServiceServicer_to_server(servicers.site, server)
    job_service_pb2_grpc.add_JobServiceServicer_to_server(servicers.job, server)
    federation_service_pb2_grpc.add_FederationServiceServicer_to_server(
        servicers.federation, server
    )
    rebalance_service_pb2_grpc.add_RebalanceServiceServicer_to_server(servicers.rebalance, server)
    accounting_service_pb2_grpc.add_AccountingServiceServicer_to_server(
        servicers.accounting, server
    )
    for add in extra:
        add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    target = str(listen)
    port = (
        server.add_secure_port(target, credentials)
        if credentials is not None
        else server.add_insecure_port(target)
    )
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    bound = Address(listen.host, port)
    log.info("grpc server started address=%s", bound)
    return BoundServer(server, bound, health_servicer)

"""AccountingService over gRPC: usage reports, the pending queue and tenants, caller-scoped."""

from __future__ import annotations

import grpc

from broker.jobs_api.accounting import AccountingQueries, Caller
from broker.rpc.errors import translate_errors
from broker.security.principal import require_principal
from computenet import convert
from computenet.errors import FieldViolation, InvalidArgumentError
from computenet.usage import UsageGrouping
from computenet.v1 import accounting_service_pb2 as pb
from computenet.v1 import accounting_service_pb2_grpc as pb_grpc


def _caller() -> Caller:
    principal = require_principal()
    return Caller(principal.tenant, principal.is_operator)


def _grouping(value: int) -> UsageGrouping:
    by = convert.grouping_from_proto(value)
    if by is None:
        raise InvalidArgumentError(
            "invalid usage request", [FieldViolation("by", f"unknown grouping {value}")]
        )
    return by


class AccountingServicer(pb_grpc.AccountingServiceServicer):
    """gRPC edge of usage accounting and the queue and tenants views."""

    def __init__(self, queries: AccountingQueries) -> None:
        self._queries = queries

    @translate_errors
    async def GetUsage(
        self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageResponse:
        report = await self._queries.usage(
            _caller(),
            tenant=request.tenant,
            since_day=request.since_day,
            until_day=request.until_day,
            by=_grouping(request.by),
        )
        return convert.usage_report_to_proto(report)

    @translate_errors
    async def ListQueue(
        self, request: pb.ListQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListQueueResponse:
        jobs = await self._queries.queue(_caller(), tenant=request.tenant)
        return pb.ListQueueResponse(jobs=[convert.queued_job_to_proto(j) for j in jobs])

    @translate_errors
    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTenantsResponse:
        tenants = await self._queries.tenants(_caller())
        return pb.ListTenantsResponse(tenants=[convert.tenant_status_to_proto(t) for t in tenants])

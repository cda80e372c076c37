"""RebalanceService over gRPC: plan, apply and page through rebalancing runs."""

from __future__ import annotations

import grpc

from broker.rebalance.service import RebalanceService
from broker.rpc.errors import translate_errors
from broker.rpc.paging import DEFAULT_PAGE_BYTES, bounded_page
from computenet import convert
from computenet.errors import UnavailableError
from computenet.v1 import rebalance_service_pb2 as pb
from computenet.v1 import rebalance_service_pb2_grpc as pb_grpc

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200


class RebalanceServicer(pb_grpc.RebalanceServiceServicer):
    """gRPC edge of rebalancing; operator-only (enforced by the security interceptors)."""

    def __init__(self, service: RebalanceService) -> None:
        self._service = service

    @translate_errors
    async def PlanRebalance(
        self, request: pb.PlanRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlanRebalanceResponse:
        run = await self._service.plan(request.move_budget)
        return pb.PlanRebalanceResponse(run=convert.rebalance_run_to_proto(run))

    @translate_errors
    async def ApplyRebalance(
        self, request: pb.ApplyRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyRebalanceResponse:
        run = await self._service.apply(request.move_budget)
        if run is None:
            raise UnavailableError(
                "another broker replica holds the rebalancing lease; apply there or retry later"
            )
        return pb.ApplyRebalanceResponse(run=convert.rebalance_run_to_proto(run))

    @translate_errors
    async def ListRebalanceRuns(
        self, request: pb.ListRebalanceRunsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRebalanceRunsResponse:
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        page = await self._service.history(size, request.page_token)
        runs, next_token = bounded_page(
            [convert.rebalance_run_to_proto(r) for r in page.runs],
            [r.run_id for r in page.runs],  # a page resumes after its last run id
            page.next_page_token,
            DEFAULT_PAGE_BYTES,
        )
        return pb.ListRebalanceRunsResponse(runs=runs, next_page_token=next_token)

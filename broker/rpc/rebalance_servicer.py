"""RebalanceService over gRPC: plan, apply and page through rebalancing runs."""

from __future__ import annotations

import grpc

from broker.rebalance.runs import RebalanceRun
from broker.rebalance.service import RebalanceService
from broker.rpc.errors import translate_errors
from computenet import convert
from computenet.errors import UnavailableError
from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo
from computenet.v1 import rebalance_service_pb2 as pb
from computenet.v1 import rebalance_service_pb2_grpc as pb_grpc

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200


def run_info(run: RebalanceRun) -> RebalanceRunInfo:
    """The broker's run record as the SDK's domain type."""
    moves = tuple(
        RebalanceMove(
            job_id=o.move.job_id,
            kind=MoveKind(o.move.kind.value),
            from_site=o.move.from_site or "",
            to_site=o.move.to_site,
            savings_cny=o.move.savings_cny,
            savings_carbon_kg=o.move.savings_carbon_kg,
            cost_cny=o.move.cost_cny,
            reason=o.move.reason,
            applied=o.applied,
            error=o.error,
        )
        for o in run.moves
    )
    return RebalanceRunInfo(
        run_id=run.run_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        started_unix_ms=run.started_unix_ms,
        ended_unix_ms=run.ended_unix_ms,
        moves=moves,
        expected_savings_cny=run.expected_savings_cny,
        realised_savings_cny=run.realised_savings_cny,
        errors=run.errors,
    )


class RebalanceServicer(pb_grpc.RebalanceServiceServicer):
    """gRPC edge of rebalancing; operator-only (enforced by the security interceptors)."""

    def __init__(self, service: RebalanceService) -> None:
        self._service = service

    @translate_errors
    async def PlanRebalance(
        self, request: pb.PlanRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlanRebalanceResponse:
        run = await self._service.plan(request.move_budget)
        return pb.PlanRebalanceResponse(run=convert.rebalance_run_to_proto(run_info(run)))

    @translate_errors
    async def ApplyRebalance(
        self, request: pb.ApplyRebalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyRebalanceResponse:
        run = await self._service.apply(request.move_budget)
        if run is None:
            raise UnavailableError(
                "another broker replica holds the rebalancing lease; apply there or retry later"
            )
        return pb.ApplyRebalanceResponse(run=convert.rebalance_run_to_proto(run_info(run)))

    @translate_errors
    async def ListRebalanceRuns(
        self, request: pb.ListRebalanceRunsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRebalanceRunsResponse:
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        page = await self._service.history(size, request.page_token)
        return pb.ListRebalanceRunsResponse(
            runs=[convert.rebalance_run_to_proto(run_info(r)) for r in page.runs],
            next_page_token=page.next_page_token,
        )

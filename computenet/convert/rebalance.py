"""Rebalancing run records on the wire, to and from `computenet.rebalance_types`."""

from __future__ import annotations

from computenet.convert.enums import move_kind_from_proto, move_kind_to_proto
from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo, RebalanceRunPage
from computenet.v1 import rebalance_service_pb2 as pb


def move_to_proto(move: RebalanceMove) -> pb.Move:
    """Domain move to wire move."""
    return pb.Move(
        job_id=move.job_id,
        kind=move_kind_to_proto(move.kind),
        from_site=move.from_site,
        to_site=move.to_site,
        savings_cny=move.savings_cny,
        savings_carbon_kg=move.savings_carbon_kg,
        cost_cny=move.cost_cny,
        reason=move.reason,
        applied=move.applied,
        error=move.error,
    )


def move_from_proto(msg: pb.Move) -> RebalanceMove:
    """Wire move to domain move (a kind this build does not know reads as a migration)."""
    return RebalanceMove(
        job_id=msg.job_id,
        kind=move_kind_from_proto(msg.kind) or MoveKind.MIGRATE,
        from_site=msg.from_site,
        to_site=msg.to_site,
        savings_cny=msg.savings_cny,
        savings_carbon_kg=msg.savings_carbon_kg,
        cost_cny=msg.cost_cny,
        reason=msg.reason,
        applied=msg.applied,
        error=msg.error,
    )


def rebalance_run_to_proto(run: RebalanceRunInfo) -> pb.RebalanceRun:
    """Domain run record to wire run record."""
    return pb.RebalanceRun(
        run_id=run.run_id,
        trigger=run.trigger,
        dry_run=run.dry_run,
        started_unix_ms=run.started_unix_ms,
        ended_unix_ms=run.ended_unix_ms,
        moves=[move_to_proto(m) for m in run.moves],
        expected_savings_cny=run.expected_savings_cny,
        realised_savings_cny=run.realised_savings_cny,
        errors=list(run.errors),
    )


def rebalance_run_from_proto(msg: pb.RebalanceRun) -> RebalanceRunInfo:
    """Wire run record to domain run record."""
    return RebalanceRunInfo(
        run_id=msg.run_id,
        trigger=msg.trigger,
        dry_run=msg.dry_run,
        started_unix_ms=msg.started_unix_ms,
        ended_unix_ms=msg.ended_unix_ms,
        moves=tuple(move_from_proto(m) for m in msg.moves),
        expected_savings_cny=msg.expected_savings_cny,
        realised_savings_cny=msg.realised_savings_cny,
        errors=tuple(msg.errors),
    )


def rebalance_run_page_to_proto(page: RebalanceRunPage) -> pb.ListRebalanceRunsResponse:
    """Domain page of run records to the ListRebalanceRuns response."""
    return pb.ListRebalanceRunsResponse(
        runs=[rebalance_run_to_proto(r) for r in page.runs], next_page_token=page.next_page_token
    )


def rebalance_run_page_from_proto(msg: pb.ListRebalanceRunsResponse) -> RebalanceRunPage:
    """ListRebalanceRuns response to a domain page of run records."""
    return RebalanceRunPage(
        runs=[rebalance_run_from_proto(r) for r in msg.runs], next_page_token=msg.next_page_token
    )

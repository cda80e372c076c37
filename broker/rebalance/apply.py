"""Pure consequences of a plan: the ordered steps of each move, and the state once they land."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from broker.placement import FederationSnapshot, JobDemand, SiteCapacity
from broker.placement.shapes import footprint, nodes_taken
from broker.rebalance.model import ActiveJob, LastMove, Move, MoveKind, RebalanceInput
from broker.rebalance.pricing import sites_move_checkpoints
from computenet.types import SiteStatus


class Action(StrEnum):
    """What one step asks the dispatch path to do."""

    MARK_MIGRATING = "mark_migrating"
    CHECKPOINT_AND_STOP = "checkpoint_and_stop"
    STOP = "stop"
    DISPATCH = "dispatch"


@dataclass(frozen=True, slots=True)
class Step:
    """One write of the apply path; the applier checks its lease token before each one."""

    job_id: str
    action: Action
    site: str
    accelerator: str = ""
    cause: str = ""
    target: str = ""
    """Where the move takes the job (set on every step of a move, `site` included)."""


def plan_steps(moves: Sequence[Move], state: RebalanceInput, run_id: str) -> list[Step]:
    """The steps of every move, in plan order: stop the old attempt before dispatching the new.

    A job on a lost site has nothing left to stop; a checkpointable job checkpoints as it stops
    when both sites move checkpoints (else the move is a plain restart).
    """
    jobs = {job.job_id: job for job in state.active}
    steps: list[Step] = []
    for move in moves:
        cause = f"rebalance run {run_id}: {move.kind} ({move.reason})"
        job = jobs.get(move.job_id)
        source = move.from_site
        if job is not None and source is not None and move.kind != MoveKind.PLACE:
            steps.append(
                Step(move.job_id, Action.MARK_MIGRATING, source, cause=cause, target=move.to_site)
            )
            if _status(state, source) != SiteStatus.LOST:
                carried = sites_move_checkpoints(source, move.to_site, state.checkpoint_sites)
                action = (
                    Action.CHECKPOINT_AND_STOP if job.can_checkpoint and carried else Action.STOP
                )
                steps.append(Step(move.job_id, action, source, cause=cause, target=move.to_site))
        steps.append(
            Step(move.job_id, Action.DISPATCH, move.to_site, move.accelerator, cause, move.to_site)
        )
    return steps


def project(
    state: RebalanceInput, moves: Sequence[Move], *, release_sources: bool = False
) -> RebalanceInput:
    """The input of the next run once `moves` have landed at the snapshot's moment.

    Targets lose the capacity the moves took. Sources keep theirs unless `release_sources`
    (by default the old attempts are still stopping and their sites have not reported yet).
    Every earlier history entry ages by one run and each moved job records its move.
    """
    snapshot = state.snapshot
    free = {s: dict(cap.free) for s, cap in snapshot.sites.items()}
    per_node = {s: cap.cards_per_node for s, cap in snapshot.sites.items()}
    nodes = {
        s: {m: cap.node_balance(m) for m in cap.cards_per_node} for s, cap in snapshot.sites.items()
    }
    host = {s: [cap.cpu_free, cap.memory_gb_free] for s, cap in snapshot.sites.items()}
    active = {job.job_id: job for job in state.active}
    pending = {job.job_id: job for job in state.pending}
    for move in moves:
        job = active.get(move.job_id)
        spec = job.spec if job is not None else pending.pop(move.job_id).spec
        demand = JobDemand.from_spec(spec)
        _adjust(free, nodes, per_node, host, move.to_site, move.accelerator, demand, -1)
        if job is not None and release_sources and move.from_site is not None:
            source_model = job.accelerator or move.accelerator
            _adjust(free, nodes, per_node, host, move.from_site, source_model, demand, +1)
        base = job or ActiveJob(move.job_id, spec, move.to_site)
        active[move.job_id] = dataclasses.replace(
            base, site=move.to_site, accelerator=move.accelerator
        )
    history = {k: dataclasses.replace(v, runs_ago=v.runs_ago + 1) for k, v in state.history.items()}
    for move in moves:
        history[move.job_id] = LastMove(
            move.job_id, move.from_site, move.to_site, snapshot.now_unix_s, runs_ago=0
        )
    sites = {
        s: dataclasses.replace(
            cap,
            free=MappingProxyType(free[s]),
            whole_nodes=MappingProxyType(nodes[s]),
            cpu_free=host[s][0],
            memory_gb_free=host[s][1],
        )
        for s, cap in snapshot.sites.items()
    }
    return dataclasses.replace(
        state,
        snapshot=FederationSnapshot(
            snapshot.topology, MappingProxyType(sites), snapshot.now_unix_s
        ),
        active=tuple(active.values()),
        pending=tuple(pending.values()),
        history=MappingProxyType(history),
    )


def _adjust(
    free: dict[str, dict[str, int]],
    nodes: dict[str, dict[str, int]],
    per_node: Mapping[str, Mapping[str, int]],
    host: dict[str, list[float]],
    site: str,
    model: str,
    demand: JobDemand,
    sign: int,
) -> None:
    if site not in free:
        return
    if demand.cards:
        shape = per_node.get(site, {}).get(model, 0)
        free[site][model] = free[site].get(model, 0) + sign * footprint(demand.cards, shape)
        if model in nodes[site]:  # node balances undo exactly: a release gives back its nodes
            nodes[site][model] += sign * nodes_taken(demand.cards, shape)
    host[site][0] += sign * demand.cpu_cores
    host[site][1] += sign * demand.memory_gb


def _status(state: RebalanceInput, site: str) -> SiteStatus | None:
    report: SiteCapacity | None = state.snapshot.sites.get(site)
    return None if report is None else report.status

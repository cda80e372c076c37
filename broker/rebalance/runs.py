"""Records of rebalancing runs and their own small table, paged newest first."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from broker.rebalance.model import LastMove, Move, MoveKind

metadata = sa.MetaData()

runs_table = sa.Table(
    "rebalance_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_unix_ms", sa.BigInteger, nullable=False),
    sa.Column("ended_unix_ms", sa.BigInteger, nullable=False),
    sa.Column("expected_savings_cny", sa.Float, nullable=False),
    sa.Column("realised_savings_cny", sa.Float, nullable=False),
    sa.Column("moves_json", sa.Text, nullable=False),
    sa.Column("errors_json", sa.Text, nullable=False),
    sa.Index("ix_rebalance_runs_started", "started_unix_ms", "run_id"),
)

fires_table = sa.Table(
    "rebalance_fires",
    metadata,
    sa.Column("fire", sa.String(96), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("claimed_unix_ms", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """A planned move and what became of it: applied, or the error that stopped it."""

    move: Move
    applied: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class RebalanceRun:
    """One run: what triggered it, its moves and outcomes, expected and realised savings."""

    run_id: str
    trigger: str
    dry_run: bool
    started_unix_ms: int
    ended_unix_ms: int
    moves: tuple[MoveOutcome, ...] = ()
    expected_savings_cny: float = 0.0
    realised_savings_cny: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)


def new_run_id(started_unix_ms: int) -> str:
    """A unique run id that sorts by start time."""
    return f"{started_unix_ms:013d}-{uuid.uuid4().hex[:12]}"


def _move_to_dict(outcome: MoveOutcome) -> dict[str, object]:
    m = outcome.move
    return {
        "job_id": m.job_id,
        "kind": m.kind.value,
        "from_site": m.from_site,
        "to_site": m.to_site,
        "savings_cny": m.savings_cny,
        "savings_carbon_kg": m.savings_carbon_kg,
        "cost_cny": m.cost_cny,
        "reason": m.reason,
        "accelerator": m.accelerator,
        "applied": outcome.applied,
        "error": outcome.error,
    }


def _move_from_dict(d: dict[str, Any]) -> MoveOutcome:
    move = Move(
        job_id=str(d["job_id"]),
        kind=MoveKind(str(d["kind"])),
        from_site=None if d["from_site"] is None else str(d["from_site"]),
        to_site=str(d["to_site"]),
        savings_cny=float(d["savings_cny"]),
        savings_carbon_kg=float(d["savings_carbon_kg"]),
        cost_cny=float(d["cost_cny"]),
        reason=str(d["reason"]),
        accelerator=str(d.get("accelerator", "")),
    )
    return MoveOutcome(move, bool(d["applied"]), str(d["error"]))


class RunStore:
    """Saves runs and pages them newest first; `save_run` of an existing id replaces it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[runs_table, fires_table], checkfirst=True)

    def claim_fire(self, fire: str, holder: str, now_unix_ms: int) -> bool:
        """Claim one scheduled fire (`label@time`) for `holder`; False if it was claimed before.

        The primary key makes the claim atomic across replicas sharing the database, so each
        fire of a schedule runs at most once whatever the replicas' clocks and leases do.
        """
        row = {"fire": fire, "holder": holder, "claimed_unix_ms": now_unix_ms}
        try:
            with self.engine.begin() as conn:
                conn.execute(fires_table.insert().values(**row))
        except IntegrityError:
            return False
        return True

    def save_run(self, run: RebalanceRun) -> None:
        """Insert the run, or replace the stored one with the same id (e.g. realised savings)."""
        row = {
            "run_id": run.run_id,
            "trigger": run.trigger,
            "dry_run": run.dry_run,
            "started_unix_ms": run.started_unix_ms,
            "ended_unix_ms": run.ended_unix_ms,
            "expected_savings_cny": run.expected_savings_cny,
            "realised_savings_cny": run.realised_savings_cny,
            "moves_json": json.dumps([_move_to_dict(m) for m in run.moves]),
            "errors_json": json.dumps(list(run.errors)),
        }
        with self.engine.begin() as conn:
            key = runs_table.c.run_id == run.run_id
            if conn.execute(runs_table.update().where(key).values(**row)).rowcount == 0:
                conn.execute(runs_table.insert().values(**row))

    def list_runs(self, limit: int = 20, before: str | None = None) -> list[RebalanceRun]:
        """Up to `limit` runs newest first, older than the run `before` (a run id) if given."""
        query = sa.select(runs_table)
        with self.engine.connect() as conn:
            if before:
                anchor = conn.execute(
                    sa.select(runs_table.c.started_unix_ms).where(runs_table.c.run_id == before)
                ).scalar_one_or_none()
                if anchor is None:
                    return []
                started = runs_table.c.started_unix_ms
                query = query.where(
                    sa.or_(
                        started < anchor, sa.and_(started == anchor, runs_table.c.run_id < before)
                    )
                )
            query = query.order_by(
                runs_table.c.started_unix_ms.desc(), runs_table.c.run_id.desc()
            ).limit(max(limit, 0))
            rows = conn.execute(query).all()
        return [_run_from_row(row) for row in rows]

    def recent_moves(self, runs: int) -> dict[str, LastMove]:
        """Each job's latest applied move within the last `runs` applied runs (anti-flapping)."""
        applied: list[RebalanceRun] = []
        before: str | None = None
        while len(applied) < runs:
            page = self.list_runs(limit=50, before=before)
            if not page:
                break
            applied.extend(r for r in page if not r.dry_run)
            before = page[-1].run_id
        return _last_moves(applied[:runs])


def _last_moves(runs: Sequence[RebalanceRun]) -> dict[str, LastMove]:
    out: dict[str, LastMove] = {}
    for age, run in enumerate(runs):  # newest first, so the first sighting of a job wins
        for outcome in run.moves:
            move = outcome.move
            if outcome.applied and move.job_id not in out:
                out[move.job_id] = LastMove(
                    move.job_id, move.from_site, move.to_site, run.started_unix_ms / 1000.0, age
                )
    return out


def _run_from_row(row: sa.Row[tuple[object, ...]]) -> RebalanceRun:
    m: Mapping[Any, Any] = row._mapping
    return RebalanceRun(
        run_id=str(m["run_id"]),
        trigger=str(m["trigger"]),
        dry_run=bool(m["dry_run"]),
        started_unix_ms=int(m["started_unix_ms"]),
        ended_unix_ms=int(m["ended_unix_ms"]),
        moves=tuple(_move_from_dict(d) for d in json.loads(str(m["moves_json"]))),
        expected_savings_cny=float(m["expected_savings_cny"]),
        realised_savings_cny=float(m["realised_savings_cny"]),
        errors=tuple(json.loads(str(m["errors_json"]))),
    )

"""Round trips of rebalancing runs through the wire messages, and the simulator's runs."""

from __future__ import annotations

from computenet import convert
from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo


def test_a_run_round_trips_through_its_wire_message() -> None:
    run = RebalanceRunInfo(
        run_id="0001700000000000-abcdef123456",
        trigger="interval@2026-01-01T00:00:00.000Z",
        dry_run=False,
        started_unix_ms=1_700_000_000_000,
        ended_unix_ms=1_700_000_000_250,
        moves=tuple(
            RebalanceMove(
                f"j{k}",
                kind,
                "" if kind == MoveKind.PLACE else "a",
                "b",
                10.5,
                2.0,
                3.0,
                "why",
                applied=k % 2 == 0,
                error="" if k % 2 == 0 else "boom",
            )
            for k, kind in enumerate(MoveKind)
        ),
        expected_savings_cny=30.0,
        realised_savings_cny=15.0,
        errors=("j1: boom",),
    )
    assert convert.rebalance_run_from_proto(convert.rebalance_run_to_proto(run)) == run
    assert run.applied_moves == 2
    assert run.to_dict()["moves_planned"] == 4

"""Capacity rules over the ledger: free is a sum, pending demand spreads, waits come from holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.control.capacity import (
    MAX_WAIT_H,
    holds_by_site,
    pending_cards_by_pool,
    queue_wait_h,
    site_capacity,
)
from broker.store.protocol import Hold
from computenet.types import CapacityReport, JobId, PoolCapacity, SiteId, SiteStatus

HOUR_MS = 3_600_000


def _hold(job: str, pool: str, cards: int, end_h: float = 0.0, site: str = "s") -> Hold:
    end = int(end_h * HOUR_MS) if end_h else 0
    return Hold(JobId(job), 1, SiteId(site), pool, cards, 2.0, 8.0, end)


def test_free_is_allocatable_minus_held_minus_others() -> None:
    pools = [PoolCapacity("a800", 16, 16, in_use=10, federation_in_use=6)]
    held = holds_by_site([_hold("j1", "a800", 6), _hold("j2", "a800", 2)])["s"]
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport(tuple(pools)), held)
    # 8 held by the broker (6 of them running, so reported busy too), 4 busy with local users
    assert cap.free == {"a800": 16 - 8 - 4}


def test_an_any_model_hold_takes_only_its_own_pool() -> None:
    pools = [PoolCapacity("910b", 512, 512), PoolCapacity("h20", 512, 512)]
    held = holds_by_site([_hold("big", "910b", 512)])["s"]
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport(tuple(pools)), held)
    assert cap.free == {"910b": 0, "h20": 512}


def test_host_resources_follow_the_same_rule() -> None:
    host = CapacityReport((), 64, 40, 512, 400, federation_cpu_cores=4, federation_memory_gb=16)
    held = holds_by_site([_hold("j", "", 0)])["s"]  # 2 cores, 8 GB held
    cap = site_capacity("s", SiteStatus.ACTIVE, host, held)
    assert cap.cpu_free == 64 - 2 - (24 - 4)
    assert cap.memory_gb_free == 512 - 8 - (112 - 16)


@given(
    st.integers(0, 64),
    st.integers(0, 64),
    st.integers(0, 64),
    st.integers(0, 64),
)
def test_held_and_running_cards_are_never_counted_twice(
    allocatable: int, held: int, running: int, local: int
) -> None:
    """A running attempt is both held and reported busy as federation work: it counts once."""
    running = min(running, held)
    pool = PoolCapacity(
        "a800", allocatable, allocatable, in_use=running + local, federation_in_use=running
    )
    holds = holds_by_site([_hold("j", "a800", held)]) if held else {}
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport((pool,)), holds.get("s"))
    assert cap.free["a800"] == max(0, allocatable - held - local)


def test_pending_cards_spread_by_model_and_share() -> None:
    allocatable = {("a", "910b"): 300, ("b", "910b"): 100, ("b", "h20"): 100}
    spread = pending_cards_by_pool([("910b", 40), ("", 50)], allocatable)
    assert spread[("a", "910b")] == 30 + 30
    assert spread[("b", "910b")] == 10 + 10
    assert spread[("b", "h20")] == 0 + 10


def test_queue_wait_is_zero_while_free_cards_cover_the_backlog() -> None:
    assert queue_wait_h(16, 16, [_hold("j", "a800", 8, 5.0)], 0) == 0.0


def test_queue_wait_is_when_enough_holds_end() -> None:
    lines = [_hold("late", "a800", 8, 9.0), _hold("soon", "a800", 4, 2.0)]
    assert queue_wait_h(0, 4, lines, 0) == 2.0
    assert queue_wait_h(0, 10, lines, 0) == 9.0
    assert queue_wait_h(0, 20, lines, 0) == MAX_WAIT_H
    assert queue_wait_h(0, 2, [_hold("unknown", "a800", 8)], 0) == MAX_WAIT_H

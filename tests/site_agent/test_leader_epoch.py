"""Leader epoch fencing in the agent's core and its journal: older leaders are refused."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from computenet.types import JobState
from site_agent.events import (
    Connected,
    Connecting,
    ExecutorReported,
    PersistLeaderEpoch,
    RefuseWelcome,
    SendReport,
    Started,
)
from site_agent.journal import LEADER_EPOCH_FILE, Journal
from site_agent.records import Snapshot
from site_agent.state import AgentState, admits_leader_epoch
from tests.site_agent.test_state import running_state


def test_a_higher_epoch_is_persisted_before_the_reports_are_resent() -> None:
    state = running_state()
    state.handle(ExecutorReported("p", "j1", 1, JobState.SUCCEEDED, 0, "ok", 3000))
    state.handle(Connecting("c"))
    assert state.handle(Connected("w", 4000, 0, leader_epoch=7)) == [
        PersistLeaderEpoch(7),
        SendReport(state.unacked[2]),
    ]
    assert (state.leader_epoch, state.connected) == (7, True)


def test_an_older_epoch_is_refused_and_nothing_of_the_welcome_counts() -> None:
    state = AgentState(Snapshot(leader_epoch=7), lease_ms=60_000)
    state.handle(Started("s", 0))
    state.handle(Connecting("c"))
    assert state.handle(Connected("w", 0, 5_000, leader_epoch=6)) == [RefuseWelcome(6, 7)]
    assert (state.connected, state.lease_ms, state.leader_epoch) == (False, 60_000, 7)


def test_the_same_epoch_and_epoch_zero_are_welcome_without_a_write() -> None:
    state = AgentState(Snapshot(leader_epoch=7))
    state.handle(Connecting("c"))
    assert state.handle(Connected("w", 0, 0, leader_epoch=7)) == []
    state.handle(Connecting("c"))
    # a single broker without elections: no epoch to compare
    assert state.handle(Connected("w", 0, 0, leader_epoch=0)) == []
    assert (state.leader_epoch, state.connected) == (7, True)


@given(st.lists(st.integers(0, 20), max_size=30))
def test_only_welcomes_at_or_above_the_highest_epoch_are_admitted(epochs: list[int]) -> None:
    state = AgentState()
    highest = 0
    for epoch in epochs:
        state.handle(Connecting("c"))
        out = state.handle(Connected("w", 0, 0, leader_epoch=epoch))
        refused = epoch != 0 and epoch < highest
        assert admits_leader_epoch(highest, epoch) is not refused
        assert (out == [RefuseWelcome(epoch, highest)]) is refused
        assert state.connected is not refused
        assert (PersistLeaderEpoch(epoch) in out) is (epoch > highest)
        highest = max(highest, epoch)
        assert state.leader_epoch == highest


def test_the_journal_keeps_the_epoch_in_its_own_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.load().leader_epoch == 0
    journal.apply([PersistLeaderEpoch(3)])
    journal.apply([PersistLeaderEpoch(12)])
    journal.close()
    assert (tmp_path / LEADER_EPOCH_FILE).read_text() == "12\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(LEADER_EPOCH_FILE)] == [
        LEADER_EPOCH_FILE
    ]
    reopened = Journal(tmp_path)
    try:
        assert reopened.load().leader_epoch == 12
    finally:
        reopened.close()


def test_a_hand_edited_epoch_file_is_read_as_none(tmp_path: Path) -> None:
    (tmp_path / LEADER_EPOCH_FILE).write_text("seven\n")
    journal = Journal(tmp_path)
    try:
        assert journal.load().leader_epoch == 0
    finally:
        journal.close()

"""The failover benchmark's figures: phases measured from the kill, their median and maximum,
the target verdict, and the agent log lines the reconnect phase is read from."""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bench.failover_figures import KillRecord, summarize
from bench.ha_cluster import agent_connections

KILL_MS = 1_700_000_000_000


def _kill(dispatched_after_ms: int | None, elected_after_ms: int = 4000) -> KillRecord:
    return KillRecord(
        killed="r0",
        new_leader="r1",
        epoch=2,
        kill_ms=KILL_MS,
        elected_ms=KILL_MS + elected_after_ms,
        agents_back_ms=(KILL_MS + 5000, KILL_MS + 5500, None),
        first_placed_ms=None if dispatched_after_ms is None else KILL_MS + dispatched_after_ms - 50,
        first_dispatched_ms=None if dispatched_after_ms is None else KILL_MS + dispatched_after_ms,
    )


def test_phases_are_seconds_from_the_kill_and_a_missing_agent_leaves_all_back_unknown() -> None:
    phases = _kill(6500).phases_s()
    assert phases == {
        "elected": 4.0,
        "first_agent_back": 5.0,
        "all_agents_back": None,
        "first_placed": 6.45,
        "first_dispatched": 6.5,
    }
    assert _kill(6500).as_dict()["failover_s"] == 6.5


@given(st.lists(st.integers(min_value=1, max_value=30_000), min_size=1, max_size=12))
def test_failover_median_and_max_are_over_the_first_dispatches(delays_ms: list[int]) -> None:
    summary = summarize([_kill(d) for d in delays_ms], target_s=10.0)
    seconds = [d / 1000 for d in delays_ms]
    assert summary["kills"] == len(delays_ms)
    assert summary["failover_max_s"] == round(max(seconds), 3)
    assert summary["failover_median_s"] == round(statistics.median(seconds), 3)
    assert summary["target_met"] == (max(seconds) <= 10.0)
    assert summary["failovers_not_seen"] == 0


def test_a_failover_never_seen_misses_the_target_and_is_left_out_of_the_statistics() -> None:
    summary = summarize([_kill(3000), _kill(None)])
    assert summary["failovers_not_seen"] == 1
    assert summary["target_met"] is False
    assert summary["failover_max_s"] == 3.0
    phases = summary["phases"]
    assert isinstance(phases, dict)
    assert phases["first_dispatched"]["n"] == 1
    assert phases["elected"]["n"] == 2


def test_no_kills_is_no_verdict_of_success() -> None:
    summary = summarize([])
    assert summary["target_met"] is False and summary["failover_median_s"] is None


def test_agent_connections_are_read_from_the_agents_log_lines(tmp_path: Path) -> None:
    stamp = datetime.datetime(2026, 12, 5, 6, 0, 1, 250_000)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S,") + "250"
    log = tmp_path / "agent.log"
    log.write_text(
        f"{text} INFO site_agent.link broker switch from=a to=b reason=not leader\n"
        f"{text} INFO site_agent.link connected target=127.0.0.1:5001 broker_epoch=ab12 "
        "leader_epoch=3 heartbeat_s=5.0 lease_s=30.0\n"
        "garbage line\n"
    )
    assert agent_connections(log) == [(int(stamp.timestamp() * 1000), "127.0.0.1:5001", 3)]
    assert agent_connections(tmp_path / "absent.log") == []

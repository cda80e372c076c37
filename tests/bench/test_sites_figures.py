"""How the thousand-site benchmark turns what it saw into figures: lag, latency, profile shares."""

from __future__ import annotations

from pathlib import Path

from bench.profile_summary import summarise
from bench.sim_agents import WorkerResult
from bench.sites_figures import Timeline, dispatch_latency, heartbeat_lag

T0 = 1_700_000_000.0


def _timeline(**kwargs: object) -> Timeline:
    base: dict[str, object] = {
        "submitted": {},
        "submit_errors": {},
        "stamps": set(),
        "samples": [],
        "window": (T0, T0 + 100.0),
    }
    return Timeline(**{**base, **kwargs})  # type: ignore[arg-type]


def test_a_stamp_is_matched_to_the_latest_report_sent_before_it() -> None:
    sends = WorkerResult(
        reports=[("a", T0 + 10.0), ("a", T0 + 15.0), ("b", T0 + 20.0), ("b", T0 + 25.0)]
    )
    stamps = {
        ("a", int((T0 + 15.004) * 1000)),  # 4 ms after the second report of a
        ("b", int((T0 + 20.050) * 1000)),  # 50 ms after b's first report
        ("b", int((T0 + 25.010) * 1000)),  # 10 ms after b's second report
        ("c", int((T0 + 30.0) * 1000)),  # no report of c was sent: unmatched
        ("a", int((T0 + 200.0) * 1000)),  # outside the window: ignored
    }
    lag = heartbeat_lag(_timeline(stamps=stamps), [sends])
    assert lag["count"] == 3 and lag["unmatched_stamps"] == 1
    assert 9.0 <= lag["p50_ms"] <= 11.0
    assert 49.0 <= lag["max_ms"] <= 51.0
    assert lag["reports_per_s"] == 0.0  # 4 reports in 100 s, rounded


def test_dispatch_latency_counts_first_attempts_and_jobs_never_dispatched() -> None:
    submitted = {
        "j1": (T0 + 1.0, T0 + 1.01),
        "j2": (T0 + 2.0, T0 + 2.01),
        "j3": (T0 + 3.0, T0 + 3.01),
    }
    seen = WorkerResult(
        dispatches=[
            ("j1", 1, T0 + 1.03),  # 20 ms after the answer
            ("j1", 2, T0 + 9.0),  # a later attempt: not a dispatch latency
            ("j2", 1, T0 + 2.005),  # before the client had its answer
        ]
    )
    out = dispatch_latency(_timeline(submitted=submitted), [seen])
    assert out["jobs_submitted_in_window"] == 3 and out["jobs_not_dispatched"] == 1
    assert out["dispatched_before_submit_answered"] == 1
    after = out["after_submit_answered"]
    assert after["count"] == 2 and after["p50_ms"] == 20.0 and after["max_ms"] == 20.0


def test_profile_shares_count_a_function_once_per_stack(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "thread (1): MainThread;run (broker/a.py:1);run (broker/a.py:9);leaf (x.py:3) 3\n"
        "thread (2): worker;solve (broker/b.py:5) 1\n"
    )
    out = summarise(raw)
    assert out["samples"] == 4
    assert dict(out["own_code_inclusive_percent"]) == {  # type: ignore[call-overload]
        "run (broker/a.py)": 75.0,
        "solve (broker/b.py)": 25.0,
    }
    assert dict(out["self_percent"])["leaf (x.py)"] == 75.0  # type: ignore[call-overload]
    assert dict(out["by_thread_percent"]) == {"MainThread": 75.0, "worker": 25.0}  # type: ignore[call-overload]

"""The chaos checker on synthetic stamp files (both outcomes) and on the real stamp job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.chaos.stamps import (
    AttemptRun,
    find_overlaps,
    launched_twice,
    parse_run,
    read_runs,
    unended,
)
from tests.support.waiting import wait_for

STAMP_JOB = Path(__file__).with_name("stamp_job.py")
S = 1_000_000_000


def write_stamps(
    folder: Path, job: str, attempt: int, site: str, *stamps: tuple[str, float]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{kind} {int(t * S)} {int(t * S)} {job} {attempt} {site}\n" for kind, t in stamps]
    with open(folder / f"{job}.{attempt}.{site}", "a") as out:
        out.writelines(lines)


def test_attempts_one_after_the_other_do_not_overlap(tmp_path: Path) -> None:
    write_stamps(tmp_path, "j1", 1, "horinger", ("start", 10), ("alive", 11), ("stopped", 12))
    write_stamps(tmp_path, "j1", 2, "zhangjiakou", ("start", 12.5), ("end", 20))
    write_stamps(tmp_path, "j2", 1, "horinger", ("start", 11), ("end", 19))
    runs = read_runs(tmp_path)
    assert len(runs) == 3
    assert find_overlaps(runs) == []
    assert unended(runs) == [] and launched_twice(runs) == []


def test_a_requeued_attempt_that_starts_before_the_old_one_ended_is_an_overlap(
    tmp_path: Path,
) -> None:
    write_stamps(tmp_path, "j1", 1, "horinger", ("start", 10), ("alive", 14), ("end", 25))
    write_stamps(tmp_path, "j1", 2, "zhangjiakou", ("start", 17), ("end", 32))
    write_stamps(tmp_path, "j2", 1, "horinger", ("start", 17), ("end", 18))  # another job
    (overlap,) = find_overlaps(read_runs(tmp_path))
    assert (overlap.first.attempt, overlap.second.attempt) == (1, 2)
    assert overlap.seconds == 8.0
    assert "j1#1@horinger" in overlap.describe() and "8.000 s" in overlap.describe()


def test_an_attempt_without_an_end_overlaps_every_later_attempt(tmp_path: Path) -> None:
    write_stamps(tmp_path, "j1", 1, "horinger", ("start", 10), ("alive", 11))
    write_stamps(tmp_path, "j1", 2, "zhangjiakou", ("start", 100), ("end", 101))
    runs = read_runs(tmp_path)
    (overlap,) = find_overlaps(runs)
    assert overlap.seconds is None
    assert [r.attempt for r in unended(runs)] == [1]


def test_an_attempt_launched_twice_is_reported(tmp_path: Path) -> None:
    write_stamps(tmp_path, "j1", 1, "horinger", ("start", 10), ("end", 11))
    write_stamps(tmp_path, "j1", 1, "horinger", ("start", 12), ("end", 13))
    write_stamps(tmp_path, "j1", 1, "wuhu", ("start", 14), ("end", 15))
    twice = launched_twice(read_runs(tmp_path))
    assert {(r.site, r.starts) for r in twice} == {("horinger", 2), ("wuhu", 1)}


def test_torn_and_foreign_lines_are_ignored() -> None:
    run = parse_run(["start 5 5 j 1 s", "alive 6 6 j 1", "garbage", "end 7 7 j 1 s"])
    assert run == AttemptRun("j", 1, "s", 5, 7, 7, "end", 1)
    assert parse_run(["alive 6 6 j 1 s"]) is None


intervals = st.tuples(st.integers(0, 1000), st.integers(1, 1000)).map(lambda t: (t[0], t[0] + t[1]))


@given(st.lists(intervals, min_size=1, max_size=6))
def test_overlaps_are_exactly_the_intersecting_pairs(spans: list[tuple[int, int]]) -> None:
    runs = [AttemptRun("j", k + 1, "s", a, b, b, "end") for k, (a, b) in enumerate(spans)]
    expected = {
        frozenset((i + 1, k + 1))
        for i, (a, b) in enumerate(spans)
        for k, (c, d) in enumerate(spans)
        if i < k and a < d and c < b
    }
    found = {frozenset((o.first.attempt, o.second.attempt)) for o in find_overlaps(runs)}
    assert found == expected


def test_the_stamp_job_stamps_its_run_and_a_sigterm_stop(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "COMPUTENET_JOB_ID": "job-a",
        "COMPUTENET_ATTEMPT": "3",
        "COMPUTENET_SITE": "wuhu",
    }
    folder = tmp_path / "stamps"
    done = subprocess.run(
        [sys.executable, "-I", str(STAMP_JOB), str(folder), "0.3"], env=env, timeout=30, check=True
    )
    assert done.returncode == 0
    stopped = subprocess.Popen(
        [sys.executable, "-I", str(STAMP_JOB), str(folder), "60"],
        env={**env, "COMPUTENET_ATTEMPT": "4"},
    )
    path = folder / "job-a.4.wuhu"
    wait_for(lambda: path.exists() and "start" in path.read_text(), what="the start stamp")
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=30) == 128 + signal.SIGTERM
    runs = {r.attempt: r for r in read_runs(folder)}
    assert runs[3].ended_by == "end" and runs[4].ended_by == "stopped"
    assert runs[3].end_ns is not None and runs[3].end_ns - runs[3].start_ns >= 0.3 * S
    assert runs[4].end_ns is not None and runs[4].end_ns < runs[3].start_ns + 60 * S
    assert find_overlaps(runs.values()) == []  # attempts 3 and 4 ran one after the other

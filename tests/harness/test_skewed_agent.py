"""The skew launcher moves the wall clock by the file's offset, steps with it, not monotonic."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import tests.harness.skewed_agent as skewed

PROBE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import skewed_agent
skewed_agent.shift_wall_clock(sys.argv[2])
print(time.time(), time.time_ns(), time.monotonic())
open(sys.argv[2], "w").write("-7200")
print(time.time(), time.time_ns(), time.monotonic())
"""


def test_the_wall_clock_is_shifted_and_stepped_while_monotonic_keeps_the_hosts(
    tmp_path: Path,
) -> None:
    offset = tmp_path / "offset"
    offset.write_text("3600\n")
    folder = str(Path(skewed.__file__).parent)
    before, before_mono = time.time(), time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, folder, str(offset)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    after, after_mono = time.time(), time.monotonic()
    ahead, ahead_ns, mono1, behind, behind_ns, mono2 = map(float, out)
    assert before + 3600 <= ahead <= after + 3600
    assert before + 3600 <= ahead_ns / 1e9 <= after + 3600
    assert before - 7200 <= behind <= after - 7200
    assert before - 7200 <= behind_ns / 1e9 <= after - 7200
    # the monotonic clock is the host's (one clock for all processes) and never steps back
    assert before_mono <= mono1 <= mono2 <= after_mono


def test_an_unreadable_offset_counts_as_none(tmp_path: Path) -> None:
    bad = tmp_path / "offset"
    bad.write_text("soon\n")
    assert skewed._offset_s(str(bad)) == 0.0
    assert skewed._offset_s(str(tmp_path / "missing")) == 0.0

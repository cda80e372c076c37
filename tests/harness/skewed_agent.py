"""Runs `computenet-agent` with its wall clock shifted by the seconds written in a file.

`python skewed_agent.py OFFSET_FILE run --config agent.yaml`. Only the agent's own reading of
the wall clock (`time.time`, `time.time_ns`) moves; the monotonic clock and the jobs it starts
keep the host's time. The file is read on every call, so a test can step the clock while the
agent runs, as NTP would. libfaketime does not serve here: with the monotonic clock left
real (DONT_FAKE_MONOTONIC=1) Python's `time.sleep` fails with EINVAL (libfaketime 0.9.10), and
without it a step moves the monotonic clock too, which no real host does.
"""

from __future__ import annotations

import runpy
import sys
import time

_real_time = time.time
_real_time_ns = time.time_ns


def _offset_s(path: str) -> float:
    try:
        with open(path, encoding="utf-8") as handle:
            return float(handle.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def shift_wall_clock(path: str) -> None:
    """From now on this process's `time.time` and `time.time_ns` add the offset in `path`."""
    time.time = lambda: _real_time() + _offset_s(path)
    time.time_ns = lambda: _real_time_ns() + int(_offset_s(path) * 1e9)


def main(argv: list[str]) -> None:
    """Shift the wall clock, then run the agent's command line with the remaining arguments."""
    here = sys.path[0]
    sys.path[:] = [p for p in sys.path if p != here]  # this folder's modules must not shadow any
    shift_wall_clock(argv[0])
    sys.argv = ["computenet-agent", *argv[1:]]
    runpy.run_module("site_agent", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])

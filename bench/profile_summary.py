"""Where a profiled process spent its time, from py-spy's raw output (collapsed stacks)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
OWN_CODE = ("broker/", "computenet/", "topology/")
ENTRY = ("broker/__main__.py", "broker/cli.py", "computenet/cli/runner.py", "broker/commands/serve")
"""Frames every stack of the main thread passes through: not worth listing."""


def _frame(text: str) -> str:
    """A frame without its line number, so a function counts once however it is entered."""
    return _LINE.sub(")", text)


def summarise(path: Path, top: int = 25) -> dict[str, object]:
    """Sample share of the hottest functions: own code inclusive, and any code by self time.

    py-spy's raw format is one `thread;frame;frame;... count` line per distinct stack, the
    outermost frame first. Shares are of all samples taken (every thread).
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0].split(":", 1)[-1].strip()] += n
        own[_frame(frames[-1])] += n
        for frame in {_frame(f) for f in frames[1:]}:
            if any(f"({p}" in frame for p in OWN_CODE) and not any(e in frame for e in ENTRY):
                inclusive[frame] += n

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(top)]

    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "by_thread_percent": shares(threads),
        "own_code_inclusive_percent": shares(inclusive),
        "self_percent": shares(own),
    }

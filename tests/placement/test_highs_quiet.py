"""The solver never writes to standard output (commands print JSON there)."""

from __future__ import annotations

import subprocess
import sys


def test_making_solvers_prints_nothing_on_stdout() -> None:
    code = (
        "from broker.placement.highs import new_highs\n"
        "h = new_highs(); h.addVar(0.0, 1.0); h.run(); new_highs().run()\n"
        "print('after')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout == "after\n"

"""HiGHS solver instances that never write to standard output.

HiGHS prints a licence banner on standard output when a process makes its first solver
instance, before any option can silence it; commands that print JSON there (`simulate
--json`, `plan --json`) must not carry it. The first instance is made with the process's
standard output pointed at /dev/null for that moment only.
"""

from __future__ import annotations

import os
import sys
import threading

import highspy

_lock = threading.Lock()
_banner_shown = False


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance."""
    global _banner_shown
    with _lock:
        if _banner_shown:
            highs = highspy.Highs()
        else:
            highs = _quietly()
            _banner_shown = True
    highs.silent()
    return highs


def _quietly() -> highspy.Highs:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)

"""Checked-in text snapshots of rendered tables: compare, or rewrite with UPDATE_SNAPSHOTS=1."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

FOLDER = Path(__file__).parent / "snapshots"


def rendered(width: int, draw: Callable[[Console], None]) -> str:
    """What `draw` prints on a console `width` columns wide, trailing spaces removed."""
    out = Console(width=width, file=io.StringIO(), record=True, highlight=False, soft_wrap=False)
    draw(out)
    return "\n".join(line.rstrip() for line in out.export_text().splitlines()) + "\n"


def matches_snapshot(name: str, text: str) -> bool:
    """True if `text` equals the snapshot `name`; with UPDATE_SNAPSHOTS set, (re)write it first
    (then read it: no id cut, every header whole)."""
    path = FOLDER / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        raise AssertionError(f"no snapshot {path}; run with UPDATE_SNAPSHOTS=1 and read it")
    return path.read_text(encoding="utf-8") == text

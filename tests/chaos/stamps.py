"""Reads the chaos jobs' stamp files and judges them: overlapping attempts, attempts never ended.

Pure apart from reading the folder: the verdicts take the stamps as data, so they are tested
with synthetic files for both outcomes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KINDS = frozenset({"start", "alive", "end", "stopped"})
"""`end`: the command ran to its end; `stopped`: SIGTERM (a cancel or a lease stop) ended it."""


@dataclass(frozen=True, slots=True)
class AttemptRun:
    """When one attempt of a job really ran, by the host's monotonic clock (ns)."""

    job: str
    attempt: int
    site: str
    start_ns: int
    last_seen_ns: int
    end_ns: int | None
    """None: no end stamp (still running, or killed without a chance to write one)."""
    ended_by: str = ""
    """`end` or `stopped`; empty while unended."""
    starts: int = 1
    """Start stamps in the file: more than one means the same attempt was launched twice."""

    def overlaps(self, other: AttemptRun) -> bool:
        """Whether the two ran at the same time (an unended run lasts forever)."""
        self_end = self.end_ns if self.end_ns is not None else float("inf")
        other_end = other.end_ns if other.end_ns is not None else float("inf")
        return self.start_ns < other_end and other.start_ns < self_end

    def describe(self) -> str:
        """`job#attempt@site [start, end]` with times in seconds."""
        end = f"{self.end_ns / 1e9:.3f} ({self.ended_by})" if self.end_ns is not None else "open"
        return f"{self.job}#{self.attempt}@{self.site} [{self.start_ns / 1e9:.3f}, {end}]"


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two attempts of one job that ran at once, and for how long (None: one never ended)."""

    first: AttemptRun
    second: AttemptRun

    @property
    def seconds(self) -> float | None:
        """Length of the overlap; None when either run has no end."""
        if self.first.end_ns is None or self.second.end_ns is None:
            return None
        start = max(self.first.start_ns, self.second.start_ns)
        return (min(self.first.end_ns, self.second.end_ns) - start) / 1e9

    def describe(self) -> str:
        """One line naming both runs and the overlap."""
        length = "unbounded" if self.seconds is None else f"{self.seconds:.3f} s"
        return f"{self.first.describe()} and {self.second.describe()} overlap {length}"


def parse_run(lines: Iterable[str]) -> AttemptRun | None:
    """The run one stamp file records; None if it holds no start stamp."""
    job, attempt, site = "", 0, ""
    start: int | None = None
    last = 0
    end: int | None = None
    ended_by = ""
    starts = 0
    for line in lines:
        parts = line.split()
        if len(parts) != 6 or parts[0] not in KINDS:
            continue  # a torn last line of a run killed mid-write
        kind, mono = parts[0], int(parts[1])
        job, attempt, site = parts[3], int(parts[4]), parts[5]
        last = max(last, mono)
        if kind == "start":
            starts += 1
            start = mono if start is None else min(start, mono)
        elif kind in ("end", "stopped") and end is None:
            end, ended_by = mono, kind
    if start is None:
        return None
    return AttemptRun(job, attempt, site, start, last, end, ended_by, starts)


def read_runs(folder: Path) -> list[AttemptRun]:
    """Every attempt's run from the stamp files in `folder`."""
    if not folder.is_dir():
        return []
    runs = []
    for path in sorted(folder.iterdir()):
        run = parse_run(path.read_text(encoding="utf-8", errors="replace").splitlines())
        if run is not None:
            runs.append(run)
    return runs


def find_overlaps(runs: Iterable[AttemptRun]) -> list[Overlap]:
    """Every pair of runs of one job that overlap in time."""
    by_job: dict[str, list[AttemptRun]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    found = []
    for job_runs in by_job.values():
        ordered = sorted(job_runs, key=lambda r: (r.start_ns, r.attempt))
        for i, first in enumerate(ordered):
            found += [
                Overlap(first, second) for second in ordered[i + 1 :] if first.overlaps(second)
            ]
    return found


def unended(runs: Iterable[AttemptRun]) -> list[AttemptRun]:
    """Runs with no end stamp."""
    return [r for r in runs if r.end_ns is None]


def launched_twice(runs: Iterable[AttemptRun]) -> list[AttemptRun]:
    """Runs of an attempt that was started more than once (at one site or at several)."""
    keyed: dict[tuple[str, int], list[AttemptRun]] = defaultdict(list)
    for run in runs:
        keyed[(run.job, run.attempt)].append(run)
    return [r for same in keyed.values() for r in same if len(same) > 1 or r.starts > 1]

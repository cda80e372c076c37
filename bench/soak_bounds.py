"""Growth bounds of a soak: a broker process whose RSS or open descriptors keep growing fails.

Each broker process (the soak restarts the broker, so there are several) is judged on its own
samples. The first `warmup_s` of its life are left out (caches, pools and connections fill up
then); the baseline is the median of the first `window_samples` samples after that and the end
level the median of the last `window_samples`, so one noisy sample moves neither. The process
fails when its RSS grew by more than `rss_growth_mib` or by more than `rss_growth_fraction` of
its baseline (whichever is less), or its descriptors by more than `fd_growth`. A process that
lived too short to have both windows after its warm-up is reported as not judged.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Bounds:
    """What growth of one broker process the soak tolerates."""

    warmup_s: float = 60.0
    window_samples: int = 6
    rss_growth_mib: float = 64.0
    rss_growth_fraction: float = 0.25
    fd_growth: int = 50

    def describe(self) -> str:
        """The bounds in one line, for reports and failure messages."""
        return (
            f"per broker process after {self.warmup_s:g} s of warm-up, median of the last "
            f"{self.window_samples} samples vs median of the first {self.window_samples}: "
            f"RSS growth <= {self.rss_growth_mib:g} MiB and <= {self.rss_growth_fraction:.0%} "
            f"of the baseline, open fds growth <= {self.fd_growth}"
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a broker process, `age_s` after it started."""

    age_s: float
    rss_kb: int
    fds: int


@dataclass(frozen=True)
class Growth:
    """The verdict on one broker process."""

    judged: bool
    samples_after_warmup: int
    rss_mib_baseline: float | None = None
    rss_mib_end: float | None = None
    rss_growth_mib: float | None = None
    rss_limit_mib: float | None = None
    fds_baseline: float | None = None
    fds_end: float | None = None
    fd_growth: float | None = None
    rss_mib_per_min: float | None = None
    fds_per_min: float | None = None
    problems: list[str] = field(default_factory=list)


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    xs = [t / 60.0 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def judge(samples: Sequence[Sample], bounds: Bounds) -> Growth:
    """Whether one broker process's samples stay within `bounds` (see the module docstring)."""
    steady = sorted((s for s in samples if s.age_s >= bounds.warmup_s), key=lambda s: s.age_s)
    n = bounds.window_samples
    if len(steady) < 2 * n:
        return Growth(judged=False, samples_after_warmup=len(steady))
    rss0 = statistics.median(s.rss_kb for s in steady[:n]) / 1024
    rss1 = statistics.median(s.rss_kb for s in steady[-n:]) / 1024
    fd0 = statistics.median(s.fds for s in steady[:n])
    fd1 = statistics.median(s.fds for s in steady[-n:])
    limit = min(bounds.rss_growth_mib, bounds.rss_growth_fraction * rss0)
    problems = []
    if rss1 - rss0 > limit:
        problems.append(
            f"RSS grew {rss1 - rss0:.1f} MiB ({rss0:.1f} -> {rss1:.1f} MiB), bound {limit:.1f} MiB"
        )
    if fd1 - fd0 > bounds.fd_growth:
        problems.append(
            f"open fds grew by {fd1 - fd0:g} ({fd0:g} -> {fd1:g}), bound {bounds.fd_growth}"
        )
    rss_slope = slope_per_minute([(s.age_s, s.rss_kb / 1024) for s in steady])
    fd_slope = slope_per_minute([(s.age_s, float(s.fds)) for s in steady])
    return Growth(
        judged=True,
        samples_after_warmup=len(steady),
        rss_mib_baseline=round(rss0, 1),
        rss_mib_end=round(rss1, 1),
        rss_growth_mib=round(rss1 - rss0, 1),
        rss_limit_mib=round(limit, 1),
        fds_baseline=fd0,
        fds_end=fd1,
        fd_growth=fd1 - fd0,
        rss_mib_per_min=None if rss_slope is None else round(rss_slope, 3),
        fds_per_min=None if fd_slope is None else round(fd_slope, 3),
        problems=problems,
    )

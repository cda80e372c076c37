"""The soak's growth bounds: steady or noisy processes pass, growing ones fail, short ones wait."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.soak_bounds import Bounds, Sample, judge, slope_per_minute

BOUNDS = Bounds(warmup_s=60.0, window_samples=6, rss_growth_mib=64.0, fd_growth=50)
MIB = 1024


def _series(rss_mib: list[float], fds: list[int], every_s: float = 5.0) -> list[Sample]:
    return [
        Sample(age_s=i * every_s, rss_kb=int(r * MIB), fds=f)
        for i, (r, f) in enumerate(zip(rss_mib, fds, strict=True))
    ]


def test_warm_up_growth_is_forgiven_and_a_flat_process_passes() -> None:
    # 12 warm-up samples climbing 200 -> 400 MiB, then flat at 400.
    rss = [200 + 200 * i / 11 for i in range(12)] + [400.0] * 24
    growth = judge(_series(rss, [30] * 36), BOUNDS)
    assert growth.judged and growth.problems == []
    assert growth.rss_growth_mib == 0.0


def test_a_leak_past_the_bound_fails_with_its_size() -> None:
    rss = [300 + 4 * i for i in range(40)]  # 4 MiB per 5 s, long after the warm-up
    growth = judge(_series(rss, [30] * 40), BOUNDS)
    assert growth.judged
    assert growth.rss_mib_per_min is not None and 40 < growth.rss_mib_per_min < 56
    assert len(growth.problems) == 1 and "RSS grew" in growth.problems[0]


def test_the_rss_bound_is_64_mib_or_a_quarter_of_the_baseline_whichever_is_less() -> None:
    def problems(before: float, after: float) -> list[str]:
        return judge(_series([before] * 18 + [after] * 18, [30] * 36), BOUNDS).problems

    assert problems(1000.0, 1060.0) == []  # +60 MiB on 1 GiB: within both
    assert problems(1000.0, 1070.0)  # +70 MiB: past 64 MiB although within 25 %
    assert problems(100.0, 124.0) == []
    assert problems(100.0, 130.0)  # +30 MiB on 100 MiB: past 25 % although within 64 MiB


def test_descriptor_growth_fails_and_single_spikes_do_not() -> None:
    fds = [40] * 18 + [100] * 18
    growth = judge(_series([300.0] * 36, fds), BOUNDS)
    assert [p for p in growth.problems if "fds" in p]
    spiky = [40] * 36
    spiky[-1] = spiky[-3] = 500  # two spikes among the last six: the median holds
    assert judge(_series([300.0] * 36, spiky), BOUNDS).problems == []


def test_a_process_too_short_for_both_windows_is_not_judged() -> None:
    growth = judge(_series([100.0 + 50 * i for i in range(20)], [30] * 20), BOUNDS)
    assert not growth.judged and growth.samples_after_warmup == 8 and growth.problems == []


@given(
    level=st.floats(min_value=100, max_value=4000),
    noise=st.lists(st.floats(min_value=-8, max_value=8), min_size=30, max_size=80),
)
def test_bounded_noise_around_a_level_never_fails(level: float, noise: list[float]) -> None:
    rss = [level + n for n in noise]
    fds = [100 + int(n) for n in noise]
    assert judge(_series(rss, fds), BOUNDS).problems == []


def test_slope_of_a_line() -> None:
    assert slope_per_minute([(0.0, 1.0), (60.0, 3.0), (120.0, 5.0)]) == 2.0
    assert slope_per_minute([(0.0, 1.0)]) is None

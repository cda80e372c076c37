"""Offered load per accelerator class over a workload's arrival window, and arrivals scaled to a
target load: shared by the simulator (`simulate --load`) and the demo."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from computenet.workload import WorkloadJob

SECONDS_PER_HOUR = 3600.0

ALL_MODELS = "any"
"""Name of the class of jobs that accept every model of the federation."""


class LoadError(ValueError):
    """A load target that cannot be reached (no arrival window, no demand, no cards)."""


def accepted_models(job: WorkloadJob, all_models: frozenset[str]) -> frozenset[str]:
    """The models a job may run on: its list, its one model, or every model if it names none."""
    if job.accelerators:
        return frozenset(job.accelerators) & all_models
    if job.accelerator:
        return frozenset({job.accelerator}) & all_models
    return all_models


def class_name(models: frozenset[str], all_models: frozenset[str], workload: str = "") -> str:
    """A readable name for a set of accepted models."""
    if models == all_models:
        return ALL_MODELS
    if workload:
        return workload
    return "+".join(sorted(models)) or "none"


@dataclass(frozen=True, slots=True)
class AcceleratorClass:
    """The models a group of jobs accepts, by name."""

    name: str
    models: frozenset[str]


def job_classes(
    jobs: Iterable[WorkloadJob], cards_by_model: Mapping[str, int]
) -> dict[frozenset[str], AcceleratorClass]:
    """Every distinct set of accepted models among the jobs (plus the whole federation)."""
    all_models = frozenset(m for m, n in cards_by_model.items() if n > 0)
    out = {all_models: AcceleratorClass(ALL_MODELS, all_models)}
    for job in jobs:
        models = accepted_models(job, all_models)
        if models not in out:
            out[models] = AcceleratorClass(class_name(models, all_models, job.workload), models)
    return out


@dataclass(frozen=True, slots=True)
class Window:
    """The replay window: first arrival to last arrival (simulated seconds)."""

    start_s: float
    end_s: float

    @property
    def hours(self) -> float:
        """Length in hours."""
        return (self.end_s - self.start_s) / SECONDS_PER_HOUR

    def overlap_h(self, start_s: float, end_s: float) -> float:
        """Hours of [start_s, end_s) inside the window."""
        return max(0.0, min(end_s, self.end_s) - max(start_s, self.start_s)) / SECONDS_PER_HOUR


def arrival_window(jobs: Sequence[WorkloadJob]) -> Window:
    """First to last submit time of the jobs (an empty window for no jobs)."""
    if not jobs:
        return Window(0.0, 0.0)
    submits = [job.submit_s for job in jobs]
    return Window(min(submits), max(submits))


@dataclass(frozen=True, slots=True)
class OfferedLoad:
    """Card-hours demanded per card-hour available over a window, overall and per class.

    A class's demand is the card-hours inside the window that the jobs able to run only on the
    class's models (accepted set a subset of them) would hold if each started on arrival on an
    average card it accepts (its reference duration over the card-weighted mean speed of its
    models); its supply is the class's cards times the window. `overall` is all
    demand over all cards. None where the window is empty. Counting only card-hours inside the
    window keeps a multi-week job that arrives late from loading a short window with work it
    could never do there.
    """

    window: Window
    overall: float | None
    classes: Mapping[str, float | None]
    models: Mapping[str, frozenset[str]]
    demand_card_h: float

    @property
    def peak(self) -> float | None:
        """The most loaded class (the federation's bottleneck)."""
        values = [v for v in (self.overall, *self.classes.values()) if v is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, object]:
        """The `offered_load` object of the JSON report."""
        return {
            "overall": _round(self.overall),
            "classes": {name: _round(v) for name, v in self.classes.items()},
            "class_models": {name: sorted(ms) for name, ms in self.models.items()},
            "window_h": round(self.window.hours, 4),
            "demand_card_h": round(self.demand_card_h, 2),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(demand: float, cards: int, hours: float) -> float | None:
    supply = cards * hours
    return demand / supply if supply > 0 and math.isfinite(supply) else None


MeanSpeed = Callable[[WorkloadJob], float]
"""A job's card-weighted mean speed over the models it accepts (1: durations as traced)."""


def _as_traced(job: WorkloadJob) -> float:
    return 1.0


def card_hours(job: WorkloadJob, window: Window, speed: float = 1.0) -> float:
    """Card-hours a job would hold inside the window from its arrival at `speed`."""
    return job.count * window.overlap_h(job.submit_s, job.submit_s + job.duration_s / speed)


def offered_load(
    jobs: Sequence[WorkloadJob],
    cards_by_model: Mapping[str, int],
    mean_speed: MeanSpeed = _as_traced,
) -> OfferedLoad:
    """Offered load of `jobs` on pools holding `cards_by_model`, over their arrival window."""
    window = arrival_window(jobs)
    classes = job_classes(jobs, cards_by_model)
    all_models = next(iter(classes))
    accepted = [
        (accepted_models(job, all_models), card_hours(job, window, mean_speed(job))) for job in jobs
    ]
    loads: dict[str, float | None] = {}
    models: dict[str, frozenset[str]] = {}
    for key, group in classes.items():
        demand = math.fsum(h for ms, h in accepted if ms <= key)
        cards = sum(cards_by_model.get(m, 0) for m in key)
        loads[group.name] = _ratio(demand, cards, window.hours)
        models[group.name] = key
    total = math.fsum(h for _, h in accepted)
    return OfferedLoad(
        window=window,
        overall=loads[ALL_MODELS],
        classes=MappingProxyType(loads),
        models=MappingProxyType(models),
        demand_card_h=total,
    )


PoolCards = Mapping[str, Sequence[tuple[str, int]]]
"""(model, cards) of every pool, by site."""


def fits_somewhere(job: WorkloadJob, pools: PoolCards, all_models: frozenset[str]) -> bool:
    """True if some site could give the job its cards with everything free (a gang needs one
    pool of an accepted model; replicas may spread over a site's accepted pools)."""
    models = accepted_models(job, all_models)
    for site_pools in pools.values():
        usable = [cards for model, cards in site_pools if model in models]
        if usable and (max(usable) if job.gang else sum(usable)) >= job.count:
            return True
    return False


def scale_arrivals(jobs: Sequence[WorkloadJob], factor: float) -> list[WorkloadJob]:
    """Arrivals compressed by `factor` (> 1 compresses, < 1 stretches) about the first arrival.

    Durations, sizes and order are kept; only the gaps between submissions change.
    """
    if factor <= 0 or not math.isfinite(factor):
        raise LoadError(f"arrival factor must be a positive number (got {factor})")
    if not jobs:
        return []
    first = min(job.submit_s for job in jobs)
    return [
        dataclasses.replace(job, submit_s=first + (job.submit_s - first) / factor) for job in jobs
    ]


FACTOR_RANGE = (1e-6, 1e6)
REL_TOLERANCE = 1e-6


def _peak_at(
    jobs: Sequence[WorkloadJob],
    cards_by_model: Mapping[str, int],
    factor: float,
    mean_speed: MeanSpeed,
) -> float:
    return offered_load(scale_arrivals(jobs, factor), cards_by_model, mean_speed).peak or 0.0


def load_factor(
    jobs: Sequence[WorkloadJob],
    cards_by_model: Mapping[str, int],
    target: float,
    mean_speed: MeanSpeed = _as_traced,
) -> float:
    """The arrival factor that brings the most loaded class's offered load to `target`.

    Every class's load grows with the factor (a job's card-hours in the window shrink no faster
    than the window), so a bisection on its logarithm finds it. Compressing all arrivals into
    one instant bounds the load (every job running at once); a target above the bound is
    refused with the bound in the message.
    """
    if target <= 0 or not math.isfinite(target):
        raise LoadError(f"--load must be a positive number (got {target})")
    if arrival_window(jobs).hours <= 0:
        raise LoadError("cannot scale to an offered load: the workload needs two arrival times")
    low, high = FACTOR_RANGE
    reachable = _peak_at(jobs, cards_by_model, high, mean_speed)
    if reachable < target:
        raise LoadError(
            f"offered load {target:g} is out of reach: with every arrival compressed into one "
            f"instant the most loaded class reaches {reachable:.3g} (fewer cards, via "
            "--capacity-scale, or more jobs, via --limit, raise it)"
        )
    if _peak_at(jobs, cards_by_model, low, mean_speed) >= target:
        return low
    for _ in range(200):
        middle = math.sqrt(low * high)
        if _peak_at(jobs, cards_by_model, middle, mean_speed) < target:
            low = middle
        else:
            high = middle
        if high / low - 1.0 < REL_TOLERANCE:
            break
    return high


def at_load(
    jobs: Sequence[WorkloadJob],
    cards_by_model: Mapping[str, int],
    target: float,
    mean_speed: MeanSpeed = _as_traced,
) -> tuple[list[WorkloadJob], float]:
    """The jobs with arrivals scaled so the peak class load is `target`, and the factor used."""
    factor = load_factor(jobs, cards_by_model, target, mean_speed)
    return scale_arrivals(jobs, factor), factor

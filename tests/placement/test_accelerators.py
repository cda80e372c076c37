"""Jobs that accept several accelerator models: speed-scaled run time, energy and memory floors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from broker.jobflow.placement_loop import allocation_for
from broker.placement import FederationSnapshot, JobDemand, Policy, place, place_batch
from broker.placement.runtime import run_hours
from broker.placement.tables import context_for
from broker.placement.terms import EnergyCost
from computenet.spec import JobSpec, parse_spec
from computenet.types import SiteId
from tests.placement.fakes import site
from topology import AcceleratorModel, AcceleratorPool, Catalogue, Topology
from topology.energy import DEFAULT_ENERGY_MODEL, run_energy

NOW_UNIX_S = 1_750_000_000.0
HOURS = 30.0


def _model(model_id: str, tflops: float, watts: float, memory_gb: float, speed: float) -> Any:
    return AcceleratorModel(
        id=model_id,
        name=model_id,
        memory_gb=memory_gb,
        tflops_bf16=tflops,
        watts=watts,
        throughput={w: speed for w in ("llm-training", "vision-training", "llm-inference")}
        | {"generic": tflops / 150.0},
    )


def _topology() -> Topology:
    """One site: a fast 989-TFLOPS 700 W part (3x on training), a slow 150-TFLOPS 350 W one."""
    base = site("dc", pools=(("fast", 64, 700.0), ("slow", 64, 350.0)))
    pools = (
        AcceleratorPool(model="fast", count=64, memory_gb=80, tflops_bf16=989, watts=700),
        AcceleratorPool(model="slow", count=64, memory_gb=64, tflops_bf16=150, watts=350),
    )
    catalogue = Catalogue(
        [_model("slow", 150, 350, 64, 1.0), _model("fast", 989, 700, 80, 3.0)],
        reference="slow",
        speed_blind=False,
    )
    return Topology([base.model_copy(update={"pools": pools})], accelerators=catalogue)


def _spec(**resources: Any) -> JobSpec:
    return parse_spec(
        {
            "name": "train",
            "kind": "training",
            "resources": {"count": 8, "cpu_cores": 0, "memory_gb": 0} | resources,
            "duration_hours": HOURS,
            "command": ["run"],
        }
    )


def _rows(topology: Topology, spec: JobSpec) -> dict[str, Any]:
    placement = place(spec, FederationSnapshot.all_free(topology, NOW_UNIX_S), Policy.default())
    return {c.accelerator: c for c in placement.candidates if c.feasible}


def test_an_any_of_job_takes_the_much_faster_part_which_also_uses_less_energy() -> None:
    topology = _topology()
    spec = _spec(accelerators=["slow", "fast"])  # reference: slow, the first listed
    rows = _rows(topology, spec)
    assert rows["fast"].run_hours == pytest.approx(HOURS / 3)
    assert rows["slow"].run_hours == pytest.approx(HOURS)
    assert rows["fast"].terms_cny["energy"] < rows["slow"].terms_cny["energy"]
    assert rows["fast"].terms_cny["carbon"] < rows["slow"].terms_cny["carbon"]
    assert rows["fast"].terms_cny["reliability"] < rows["slow"].terms_cny["reliability"]
    placement = place(spec, FederationSnapshot.all_free(topology, NOW_UNIX_S), Policy.default())
    assert placement.candidates[0].accelerator == "fast"
    batch = place_batch(
        [("j", spec)], FederationSnapshot.all_free(topology, NOW_UNIX_S), Policy.default()
    )
    assert batch.models["j"] == "fast"


def test_speed_blind_replays_take_the_low_power_part() -> None:
    blind = _topology().with_equal_speeds()
    rows = _rows(blind, _spec(accelerators=["slow", "fast"]))
    assert rows["fast"].run_hours == rows["slow"].run_hours == HOURS
    assert rows["slow"].terms_cny["energy"] < rows["fast"].terms_cny["energy"]
    placement = place(
        _spec(accelerators=["slow", "fast"]),
        FederationSnapshot.all_free(blind, NOW_UNIX_S),
        Policy.default(),
    )
    assert placement.candidates[0].accelerator == "slow"


def test_the_reference_model_sets_the_unit_of_duration() -> None:
    rows = _rows(_topology(), _spec(accelerators=["slow", "fast"], reference="fast"))
    assert rows["fast"].run_hours == pytest.approx(HOURS)
    assert rows["slow"].run_hours == pytest.approx(HOURS * 3)


@pytest.mark.parametrize("start_hour", [0.0, 7.5, 17.25, 23.9])
@pytest.mark.parametrize("model", ["fast", "slow"])
def test_the_placement_energy_term_is_run_energy(model: str, start_hour: float) -> None:
    topology = _topology()
    spec = _spec(accelerators=["slow", "fast"], cpu_cores=96)
    snapshot = FederationSnapshot.all_free(topology, NOW_UNIX_S)
    ctx = context_for(snapshot)
    ctx = type(ctx)(ctx.table, ctx.avail, start_hour)
    opt = ctx.table.opt_model.index(model)
    term = EnergyCost(DEFAULT_ENERGY_MODEL).cost_cny(
        JobDemand.from_spec(spec), ctx, np.asarray([opt])
    )[0]
    pool = topology.site("dc").pool(model)
    assert pool is not None
    hours = HOURS / topology.speed(model, "slow", "llm-training")
    expected = run_energy(
        topology,
        "dc",
        pool.watts * 8,
        start_hour,
        hours,
        cards=8,
        cpu_cores=96,
        workload="llm-training",
    )
    assert term == pytest.approx(expected.cny, rel=1e-9)


def test_the_hold_ends_after_the_scaled_run() -> None:
    topology = _topology()
    spec = _spec(accelerators=["slow", "fast"])
    now_ms = 1_000_000
    fast = allocation_for(spec, SiteId("dc"), "fast", now_ms, topology=topology)
    slow = allocation_for(spec, SiteId("dc"), "slow", now_ms, topology=topology)
    assert fast.expected_end_unix_ms - now_ms == int(HOURS / 3 * 3_600_000)
    assert slow.expected_end_unix_ms - now_ms == int(HOURS * 3_600_000)


def test_a_memory_floor_rejects_small_cards_with_a_reason() -> None:
    topology = _topology()
    spec = _spec(accelerators=["slow"], min_memory_gb=80)
    placement = place(spec, FederationSnapshot.all_free(topology, NOW_UNIX_S), Policy.default())
    assert placement.chosen is None
    assert placement.candidates[0].reason == "slow has 64 GB per card, the job needs 80 GB"
    rows = _rows(topology, _spec(accelerators=["slow", "fast"], min_memory_gb=80))
    assert set(rows) == {"fast"}


def test_serving_jobs_keep_their_window_on_every_model() -> None:
    spec = parse_spec(
        {
            "name": "serve",
            "kind": "inference",
            "resources": {"accelerators": ["slow", "fast"], "count": 1},
            "duration_hours": HOURS,
            "inference": {"user_regions": [{"region": "nowhere"}], "latency_slo_ms": 1e4},
            "command": ["serve"],
        }
    )
    demand = JobDemand.from_spec(spec)
    assert demand.workload == "llm-inference" and demand.reference == "slow"
    assert run_hours(demand, _topology(), "fast") == HOURS

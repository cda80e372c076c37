"""The one energy model: card power at a workload's utilisation, host share, PUE, price, carbon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from topology import WORKLOADS, default_topology
from topology.energy import DEFAULT_ENERGY_MODEL, EnergyModel, run_energy


def test_every_workload_class_has_a_default_utilisation() -> None:
    assert set(DEFAULT_ENERGY_MODEL.utilisation) == set(WORKLOADS)
    assert all(0 < share <= 1 for share in DEFAULT_ENERGY_MODEL.utilisation.values())


def test_a_run_draws_its_cards_at_utilisation_plus_their_host_share() -> None:
    topology = default_topology()
    model = EnergyModel(utilisation={"llm-training": 0.5}, host_watts_per_card=100)
    used = run_energy(
        topology, "horinger", 8 * 400.0, 3.0, 10.0, cards=8, workload="llm-training", model=model
    )
    pue = topology.site("horinger").pue
    assert used.kw == pytest.approx((8 * 400 * 0.5 + 8 * 100) * pue / 1000)
    assert used.kwh == pytest.approx(used.kw * 10)
    assert used.cny == pytest.approx(topology.energy_cost_cny("horinger", used.kw, 3.0, 10.0))
    assert used.carbon_kg == pytest.approx(topology.carbon_kg("horinger", used.kwh))


def test_cpu_only_work_draws_its_cores() -> None:
    used = run_energy(default_topology(), "guian", 0.0, 0.0, 1.0, cpu_cores=128)
    assert used.kw == pytest.approx(128 * 3.0 * default_topology().site("guian").pue / 1000)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown workload class 'cooking'"):
        EnergyModel(utilisation={"cooking": 0.5})
    with pytest.raises(ValidationError, match=r"must be in \[0, 1\]"):
        EnergyModel(utilisation={"generic": 1.5})
    with pytest.raises(ValueError, match="unknown workload class"):
        run_energy(default_topology(), "guian", 400.0, 0.0, 1.0, cards=1, workload="cooking")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 5000), min_size=1, max_size=5),
    st.integers(0, 64),
    st.floats(0, 512),
    st.sampled_from(WORKLOADS),
)
def test_arrays_and_scalars_give_the_same_power(
    watts: list[float], cards: int, cores: float, workload: str
) -> None:
    board = np.asarray(watts)
    together = DEFAULT_ENERGY_MODEL.it_watts(board, np.full_like(board, cards), cores, workload)
    one_by_one = [DEFAULT_ENERGY_MODEL.it_watts(w, float(cards), cores, workload) for w in watts]
    assert together.tolist() == pytest.approx(one_by_one)

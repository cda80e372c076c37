"""The accelerator catalogue: throughput per workload class, speed ratios, loader checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology import (
    WORKLOADS,
    TopologyError,
    UnknownAcceleratorError,
    default_topology,
    load_topology,
    synthetic_topology,
)
from topology.accelerators import DERIVED_FROM_TFLOPS

from .test_loader import PRICES, SITE

CATALOGUE = """\
throughput_reference: base
accelerators:
  base:
    memory_gb: 80
    tflops_bf16: 300
    watts: 400
    throughput: {{llm-training: 1.0}}
    provenance: {{throughput.llm-training: "D:reference"}}
  fast:
    memory_gb: 80
    tflops_bf16: 900
    watts: 700
    throughput: {{{fast}}}
    provenance: {{{provenance}}}
"""


def _doc(fast: str, provenance: str, pools: str = "    pools: [{model: fast, count: 8}]\n") -> str:
    site = SITE.format(id="a", prices=PRICES) + pools
    return CATALOGUE.format(fast=fast, provenance=provenance) + "sites:\n" + site


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return [str(issue) for issue in info.value.issues]


def test_every_model_has_every_workload_class() -> None:
    topo = default_topology()
    assert set(WORKLOADS) == {"llm-training", "vision-training", "llm-inference", "generic"}
    for model in topo.accelerators.values():
        assert set(model.throughput) == set(WORKLOADS), model.id
        assert all(value > 0 for value in model.throughput.values())
        for workload in WORKLOADS:
            assert f"throughput.{workload}" in model.provenance, (model.id, workload)


def test_default_catalogue_is_relative_to_a800() -> None:
    topo = default_topology()
    assert topo.catalogue.reference == "a800"
    assert all(value == 1.0 for value in topo.accelerator("a800").throughput.values())
    # measured MLPerf ratios: Hopper trains LLMs faster than it trains vision models over Ampere
    llm, vision = (topo.speed("h800", "a800", w) for w in ("llm-training", "vision-training"))
    assert llm > vision
    assert topo.speed("k100ai", "a800", "llm-training") < 1.0


def test_missing_classes_default_to_the_dense_tflops_ratio(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(_doc("vision-training: 2.0", 'throughput.vision-training: "M:guess"'))
    path.write_text(path.read_text().replace("accelerators:", "models: {guess: g}\naccelerators:"))
    topo = load_topology(path)
    fast = topo.accelerator("fast")
    assert fast.throughput["vision-training"] == 2.0
    assert fast.throughput["generic"] == pytest.approx(900 / 300)
    assert fast.provenance["throughput.generic"] == DERIVED_FROM_TFLOPS
    assert topo.speed("fast", "base", "llm-inference") == pytest.approx(3.0)


def test_unknown_workload_class_names_file_line_and_field(tmp_path: Path) -> None:
    text = _doc("llm-trainig: 2.0", 'throughput.llm-trainig: "D:x"')
    line = next(i + 1 for i, x in enumerate(text.splitlines()) if "llm-trainig: 2.0" in x)
    issues = _issues(tmp_path, text)
    assert any(
        f"topo.yaml:{line}: accelerators.fast.throughput.llm-trainig: unknown workload class"
        in issue
        for issue in issues
    ), issues


def test_throughput_figures_need_provenance(tmp_path: Path) -> None:
    issues = _issues(tmp_path, _doc("llm-training: 2.0", ""))
    assert any(
        "accelerators.fast.throughput.llm-training: give its basis" in issue for issue in issues
    ), issues


def test_the_reference_must_be_catalogued_and_one(tmp_path: Path) -> None:
    text = _doc("llm-training: 2.0", 'throughput.llm-training: "D:x"')
    unknown = text.replace("throughput_reference: base", "throughput_reference: x")
    issues = _issues(tmp_path, unknown)
    assert any("throughput_reference: unknown accelerator 'x'" in i for i in issues), issues
    issues = _issues(tmp_path, text.replace("{llm-training: 1.0}", "{llm-training: 1.5}"))
    assert any("must be 1.0" in i for i in issues), issues


def test_speed_queries_check_their_arguments() -> None:
    topo = default_topology()
    with pytest.raises(UnknownAcceleratorError, match="'nope'"):
        topo.speed("nope", "a800", "generic")
    with pytest.raises(ValueError, match="unknown workload class 'cooking'"):
        topo.speed("h800", "a800", "cooking")


def test_equal_speeds_keeps_everything_but_speed() -> None:
    topo = default_topology()
    blind = topo.with_equal_speeds()
    assert blind.speed_blind and not topo.speed_blind
    assert blind.speed("h800", "k100ai", "llm-training") == 1.0
    assert topo.speed("h800", "k100ai", "llm-training") > 1.0
    assert blind.accelerators == topo.accelerators
    assert blind.sites == topo.sites
    assert blind.rtt_ms("zhangjiakou", "qingyang") == topo.rtt_ms("zhangjiakou", "qingyang")
    with pytest.raises(UnknownAcceleratorError):
        blind.speed("nope", "a800", "generic")


def test_pool_only_models_join_the_catalogue() -> None:
    topo = synthetic_topology(6, 2, 10, seed=3)
    models = {pool.model for site in topo.sites for pool in site.pools}
    assert models <= set(topo.accelerators)
    a, b = sorted(models)[:2]
    ratio = topo.accelerator(a).tflops_bf16 / topo.accelerator(b).tflops_bf16
    assert topo.speed(a, b, "llm-training") == pytest.approx(ratio)


_MODELS = sorted(default_topology().accelerators)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_MODELS),
    st.sampled_from(_MODELS),
    st.sampled_from(_MODELS),
    st.sampled_from(WORKLOADS),
    st.booleans(),
)
def test_speed_ratios_are_consistent(a: str, b: str, c: str, workload: str, blind: bool) -> None:
    topo = default_topology().with_equal_speeds() if blind else default_topology()
    assert topo.speed(a, a, workload) == 1.0
    assert math.isclose(
        topo.speed(a, b, workload) * topo.speed(b, c, workload),
        topo.speed(a, c, workload),
        rel_tol=1e-12,
    )
    assert math.isclose(topo.speed(a, b, workload) * topo.speed(b, a, workload), 1.0)

"""Slurm capacity by model: GRES types mapped to topology models, node shapes, unmapped types."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from computenet.types import PoolCapacity
from site_agent.capacity.slurm import SlurmSource, parse_scontrol_nodes, summarize
from site_agent.capacity.slurm_gres import GresModels, gres_shape, uneven_pools, unmapped_types
from site_agent.executors.slurm_jobs import GresShape

# Shaped like `scontrol -d show node -o` of slurm-wlm 22.05 (fields the agent reads).
MIXED = "\n".join(
    [
        "NodeName=g1 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:nvidia_a800:8(S:0-1) GresUsed=gpu:nvidia_a800:2(IDX:0-1) State=MIXED "
        "Partitions=gpu",
        "NodeName=g2 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:a800:4 GresUsed=gpu:a800:0(IDX:N/A) State=IDLE Partitions=gpu",
        "NodeName=g3 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:nvidia_a800:8,gpu:mystery:2 GresUsed=gpu:nvidia_a800:0 State=IDLE "
        "Partitions=gpu",
        "NodeName=h1 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:H100:4 GresUsed=gpu:h100:4 State=ALLOCATED Partitions=other",
    ]
)
MODELS = GresModels.of({"NVIDIA_A800": "a800"})


def test_gres_types_map_to_models() -> None:
    assert MODELS.model("nvidia_a800") == "a800"  # configured (keys compared in lower case)
    assert MODELS.model("h100") == "h100"  # a model id of the topology
    assert MODELS.model("mystery") is None
    assert MODELS.gres_types("a800") == ["nvidia_a800", "a800"]


def test_pools_by_model_with_node_shapes() -> None:
    nodes = parse_scontrol_nodes(MIXED)
    snap = summarize(nodes, models=MODELS)
    assert snap.pools == (
        PoolCapacity("a800", 20, 20, 2, nodes=3, cards_per_node=4),
        PoolCapacity("h100", 4, 4, 4, nodes=1, cards_per_node=4),
    )
    assert uneven_pools(nodes, MODELS) == {"a800": (4, 8)}
    assert unmapped_types(nodes, MODELS) == ["mystery"]


def test_shape_for_sbatch_prefers_the_type_on_most_nodes() -> None:
    nodes = parse_scontrol_nodes(MIXED)
    assert gres_shape(nodes, "a800", MODELS) == GresShape("nvidia_a800", 2, 8)
    assert gres_shape(nodes, "A800", MODELS, partition="gpu") == GresShape("nvidia_a800", 2, 8)
    assert gres_shape(nodes, "h100", MODELS, partition="gpu") is None
    assert gres_shape(nodes, "910b", MODELS) is None


def test_source_warns_once_per_unmapped_type_and_logs_uneven_pools(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "scontrol").write_text(f"#!/bin/sh\ncat <<'EOF'\n{MIXED}\nEOF\n")
    (tmp_path / "scontrol").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    source = SlurmSource(env=env, gres_models={"nvidia_a800": "a800"})
    with caplog.at_level(logging.INFO, logger="site_agent.capacity.slurm"):
        first = source.probe()
        assert source.probe() == first
    assert [p.model for p in first.pools] == ["a800", "h100"]
    assert source.warnings == [
        "slurm GRES type 'mystery' maps to no accelerator model: its cards are not offered; "
        "add it to capacity.gres_models (e.g. {mystery: a800})"
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("gres_type=mystery" in line for line in lines) == 1
    assert sum("cards_per_node=4,8 reported=4" in line for line in lines) == 1

"""Static pools with a node shape: config validation, and the capacity the agent reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from computenet.types import PoolCapacity
from site_agent.app import make_capacity_source
from site_agent.capacity.static import StaticSource
from site_agent.config import ConfigError, load_config

CONFIG = """\
site: chongqing
broker: 127.0.0.1:50051
capacity:
  source: static
  pools:
    - {{model: a800, count: 8, {shape}}}
    - {{model: 910b, count: 4}}
  cpu_cores: 64
  memory_gb: 512
executor: {{kind: local}}
state_dir: ./agent-state
"""


def _load(tmp_path: Path, shape: str) -> list[PoolCapacity]:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG.format(shape=shape))
    return list(make_capacity_source(load_config(path)).probe().pools)


@pytest.mark.parametrize("shape", ["nodes: 2, cards_per_node: 4", "nodes: 2", "cards_per_node: 4"])
def test_a_static_pool_reports_its_node_shape(tmp_path: Path, shape: str) -> None:
    a800, ascend = _load(tmp_path, shape)
    assert a800 == PoolCapacity("a800", 8, 8, nodes=2, cards_per_node=4)
    assert (ascend.nodes, ascend.cards_per_node) == (0, 0)  # unknown: one bin of cards


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        (
            "nodes: 3, cards_per_node: 4",
            "nodes x cards_per_node must equal count: 3 x 4 != 8",
        ),
        ("nodes: 3", "count 8 is not a whole number of nodes (3)"),
        ("cards_per_node: 3", "count 8 is not a whole number of cards_per_node (3)"),
        ("cards_per_node: 0", "capacity.pools.0.cards_per_node"),
    ],
)
def test_a_static_pool_shape_must_match_its_count(tmp_path: Path, shape: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, shape)
    message = str(caught.value)
    assert "agent.yaml:6: capacity.pools.0" in message
    assert problem in message


def test_static_source_without_shapes_is_as_before() -> None:
    source = StaticSource([("a800", 8)], cpu_cores=8, memory_gb=64)
    assert source.probe().pools == (PoolCapacity("a800", 8, 8),)
    with pytest.raises(ValueError, match="2 nodes x 3 cards != 8 cards"):
        StaticSource([("a800", 8, 2, 3)], cpu_cores=8, memory_gb=64)

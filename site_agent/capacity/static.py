"""The `static` capacity source: what the configuration declares."""

from __future__ import annotations

from collections.abc import Sequence

from computenet.types import CapacityReport, PoolCapacity

StaticPool = tuple[str, int] | tuple[str, int, int, int]
"""(model, count) or (model, count, nodes, cards per node); 0 nodes: shape unknown."""


class StaticSource:
    """Reports the configured pools, with their node shapes, CPU and memory as fully allocatable."""

    name = "static"
    tracks_usage = False

    def __init__(self, pools: Sequence[StaticPool], *, cpu_cores: float, memory_gb: float) -> None:
        self._snapshot = CapacityReport(
            pools=tuple(_pool(p) for p in pools),
            cpu_cores=cpu_cores,
            cpu_cores_free=cpu_cores,
            memory_gb=memory_gb,
            memory_gb_free=memory_gb,
        )

    def probe(self) -> CapacityReport:
        """Return the declared capacity."""
        return self._snapshot


def _pool(declared: StaticPool) -> PoolCapacity:
    model, count = declared[0], declared[1]
    nodes, per_node = (declared[2], declared[3]) if len(declared) == 4 else (0, 0)
    if nodes * per_node not in (0, count):
        raise ValueError(f"pool {model}: {nodes} nodes x {per_node} cards != {count} cards")
    return PoolCapacity(
        model=model, total=count, allocatable=count, nodes=nodes, cards_per_node=per_node
    )

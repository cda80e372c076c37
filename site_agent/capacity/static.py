"""The `static` capacity source: what the configuration declares."""

from __future__ import annotations

from collections.abc import Sequence

from computenet.types import CapacityReport, PoolCapacity


class StaticSource:
    """Reports the configured pools, CPU and memory as fully allocatable."""

    name = "static"
    tracks_usage = False

    def __init__(
        self, pools: Sequence[tuple[str, int]], *, cpu_cores: float, memory_gb: float
    ) -> None:
        self._snapshot = CapacityReport(
            pools=tuple(PoolCapacity(model=m, total=n, allocatable=n) for m, n in pools),
            cpu_cores=cpu_cores,
            cpu_cores_free=cpu_cores,
            memory_gb=memory_gb,
            memory_gb_free=memory_gb,
        )

    def probe(self) -> CapacityReport:
        """Return the declared capacity."""
        return self._snapshot

"""The `host` capacity source: CPU and memory of this machine, accelerators from the vendor tools
(nvidia-smi, npu-smi, hy-smi) that are installed."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from computenet.types import CapacityReport, PoolCapacity
from site_agent.capacity import vendor_probes
from site_agent.capacity.base import CapacityError
from site_agent.capacity.vendor_probes import gpu_model_from_name
from site_agent.devices.vendors import Device

KIB_PER_GB = 1024 * 1024

__all__ = ["HostSource", "gpu_model_from_name", "parse_meminfo", "parse_nvidia_smi", "pools_of"]


def pools_of(devices: Iterable[Device]) -> tuple[PoolCapacity, ...]:
    """One pool per model, counting cards."""
    counts = Counter(d.model for d in devices)
    return tuple(PoolCapacity(model=m, total=n, allocatable=n) for m, n in sorted(counts.items()))


def parse_nvidia_smi(text: str) -> tuple[PoolCapacity, ...]:
    """Pools from `nvidia-smi --query-gpu=[index,]name,memory.total --format=csv,noheader`."""
    return pools_of(vendor_probes.parse_nvidia_smi(text))


def parse_meminfo(text: str) -> tuple[float, float]:
    """(total_gb, available_gb) from /proc/meminfo."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"(\w+):\s+(\d+)", line)
        if match:
            fields[match.group(1)] = int(match.group(2))
    if "MemTotal" not in fields:
        raise CapacityError("/proc/meminfo has no MemTotal line")
    total_kib = fields["MemTotal"]
    available_kib = fields.get("MemAvailable", fields.get("MemFree", total_kib))
    return total_kib / KIB_PER_GB, available_kib / KIB_PER_GB


def usable_cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class HostSource:
    """Probes this machine; without any vendor tool it reports no accelerator pools."""

    name = "host"
    tracks_usage = False

    def __init__(
        self,
        *,
        meminfo_path: Path = Path("/proc/meminfo"),
        env: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._meminfo_path = meminfo_path
        self._env = dict(env) if env is not None else None
        self._timeout_s = timeout_s

    def devices(self) -> tuple[Device, ...]:
        """The accelerators the vendor tools list now."""
        return vendor_probes.probe_devices(self._env, self._timeout_s)

    def probe(self) -> CapacityReport:
        """Read CPUs, memory and accelerators now."""
        try:
            total_gb, available_gb = parse_meminfo(self._meminfo_path.read_text())
        except OSError as exc:
            raise CapacityError(f"cannot read {self._meminfo_path}: {exc.strerror}") from None
        cpus = float(usable_cpu_count())
        return CapacityReport(
            pools=pools_of(self.devices()),
            cpu_cores=cpus,
            cpu_cores_free=cpus,
            memory_gb=round(total_gb, 3),
            memory_gb_free=round(available_gb, 3),
        )

"""The `host` capacity source: CPU and memory of this machine, GPUs from nvidia-smi if present."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from computenet.types import CapacityReport, PoolCapacity
from site_agent.capacity.base import CapacityError

log = logging.getLogger(__name__)

NVIDIA_SMI_ARGS = ("--query-gpu=name,memory.total", "--format=csv,noheader")
_VENDOR_WORDS = frozenset({"nvidia", "tesla", "geforce", "quadro", "amd", "instinct"})
_PREFIX_WORDS = frozenset({"rtx", "gtx"})
KIB_PER_GB = 1024 * 1024


def gpu_model_from_name(name: str) -> str:
    """Model id from a GPU name: "NVIDIA A800-SXM4-80GB" -> "a800", "H100 80GB HBM3" -> "h100"."""
    words = [w for w in re.split(r"[\s\-_]+", name.strip().lower()) if w]
    words = [w for w in words if w not in _VENDOR_WORDS]
    if not words:
        return ""
    if words[0] in _PREFIX_WORDS and len(words) > 1:
        return words[0] + words[1]
    return words[0]


def parse_nvidia_smi(text: str) -> tuple[PoolCapacity, ...]:
    """Pools from `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader` output."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        name = line.split(",")[0].strip()
        if not name:
            continue
        model = gpu_model_from_name(name)
        if model:
            counts[model] = counts.get(model, 0) + 1
    return tuple(PoolCapacity(model=m, total=n, allocatable=n) for m, n in sorted(counts.items()))


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
    """Probes this machine; without nvidia-smi it reports no accelerator pools."""

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

    def probe(self) -> CapacityReport:
        """Read CPUs, memory and GPUs now."""
        try:
            total_gb, available_gb = parse_meminfo(self._meminfo_path.read_text())
        except OSError as exc:
            raise CapacityError(f"cannot read {self._meminfo_path}: {exc.strerror}") from None
        cpus = float(usable_cpu_count())
        return CapacityReport(
            pools=self._gpus(),
            cpu_cores=cpus,
            cpu_cores_free=cpus,
            memory_gb=round(total_gb, 3),
            memory_gb_free=round(available_gb, 3),
        )

    def _gpus(self) -> tuple[PoolCapacity, ...]:
        path = (self._env or os.environ).get("PATH")
        binary = shutil.which("nvidia-smi", path=path)
        if binary is None:
            return ()
        try:
            proc = subprocess.run(
                [binary, *NVIDIA_SMI_ARGS],
                capture_output=True,
                text=True,
                timeout=self._timeout_s,
                env=self._env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("nvidia-smi failed error=%s", exc)
            return ()
        if proc.returncode != 0:
            log.warning("nvidia-smi failed rc=%d stderr=%s", proc.returncode, proc.stderr.strip())
            return ()
        return parse_nvidia_smi(proc.stdout)

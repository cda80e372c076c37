"""The `slurm` capacity source: nodes, CPUs, memory and GRES GPUs from `scontrol show node`."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from computenet.types import CapacityReport, PoolCapacity
from site_agent.capacity.base import CapacityError
from site_agent.capacity.slurm_gres import (
    GresModels,
    by_model,
    uneven_pools,
    unmapped_types,
    unmapped_warning,
)

log = logging.getLogger(__name__)

SCONTROL_NODES = ("scontrol", "-d", "show", "node", "-o")
UNAVAILABLE_STATES = frozenset(
    {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "MAINT", "NOT_RESPONDING"}
)
MB_PER_GB = 1024
_FIELD = re.compile(r"(\S+?)=(\S*)")


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """One node as `scontrol show node` describes it."""

    name: str
    states: frozenset[str]
    cpus: int
    cpus_alloc: int
    memory_mb: int
    memory_alloc_mb: int
    gpus: Mapping[str, int]
    gpus_used: Mapping[str, int]
    partitions: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        """False for nodes that are down, drained, failing or in maintenance."""
        return not (self.states & UNAVAILABLE_STATES)


def parse_node_states(text: str) -> frozenset[str]:
    """`IDLE+DRAIN`, `DOWN*`, `MIXED#` -> the set of state words (`*` means not responding)."""
    states = set()
    for part in text.upper().split("+"):
        word = part.rstrip("*~#!%$@^-")
        if word:
            states.add(word)
        if part.endswith("*"):
            states.add("NOT_RESPONDING")
    return frozenset(states)


def parse_gres(text: str, *, default_type: str = "gpu") -> dict[str, int]:
    """GPU counts by type from `gpu:a800:4(S:0-1),gpu:h100:2` (untyped GPUs count as "gpu")."""
    counts: dict[str, int] = {}
    for item in re.split(r",(?![^(]*\))", text):
        item = re.sub(r"\(.*?\)", "", item).strip()
        parts = item.split(":")
        if not parts or parts[0] != "gpu":
            continue
        if len(parts) == 3 and parts[2].isdigit():
            model, count = parts[1].lower(), int(parts[2])
        elif len(parts) == 2 and parts[1].isdigit():
            model, count = default_type, int(parts[1])
        else:
            continue
        counts[model] = counts.get(model, 0) + count
    return counts


def _int(fields: Mapping[str, str], key: str) -> int:
    value = fields.get(key, "0")
    return int(value) if value.isdigit() else 0


def parse_scontrol_nodes(text: str) -> list[SlurmNode]:
    """Nodes from `scontrol -d show node -o` (one node per line)."""
    nodes = []
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "NodeName" not in fields:
            continue
        gres = fields.get("Gres", "(null)")
        used = fields.get("GresUsed", "")
        partitions = fields.get("Partitions", "")
        nodes.append(
            SlurmNode(
                name=fields["NodeName"],
                states=parse_node_states(fields.get("State", "UNKNOWN")),
                cpus=_int(fields, "CPUTot"),
                cpus_alloc=_int(fields, "CPUAlloc"),
                memory_mb=_int(fields, "RealMemory"),
                memory_alloc_mb=_int(fields, "AllocMem"),
                gpus=parse_gres(gres),
                gpus_used=parse_gres(used),
                partitions=tuple(p for p in partitions.split(",") if p and p != "(null)"),
            )
        )
    return nodes


def summarize(
    nodes: Sequence[SlurmNode],
    partition: str | None = None,
    models: GresModels | None = None,
) -> CapacityReport:
    """Site capacity from nodes: totals over all, allocatable and free over available nodes.

    GPU pools are by model (see GresModels; by GRES type if no map is given), each with its
    node shape: nodes holding its cards and the fewest cards any of them holds.
    """
    chosen = [n for n in nodes if partition is None or partition in n.partitions]
    total: dict[str, int] = {}
    allocatable: dict[str, int] = {}
    in_use: dict[str, int] = {}
    per_node: dict[str, list[int]] = {}
    cpus = cpus_free = mem_mb = mem_free_mb = 0
    for node in chosen:
        cpus += node.cpus
        mem_mb += node.memory_mb
        gpus = by_model(node.gpus, models) if models is not None else dict(node.gpus)
        used = by_model(node.gpus_used, models) if models is not None else node.gpus_used
        for model, count in gpus.items():
            total[model] = total.get(model, 0) + count
            in_use[model] = in_use.get(model, 0) + used.get(model, 0)
            if count > 0:
                per_node.setdefault(model, []).append(count)
            if node.available:
                allocatable[model] = allocatable.get(model, 0) + count
        if node.available:
            cpus_free += max(0, node.cpus - node.cpus_alloc)
            mem_free_mb += max(0, node.memory_mb - node.memory_alloc_mb)
    pools = tuple(
        PoolCapacity(
            model=m,
            total=n,
            allocatable=allocatable.get(m, 0),
            in_use=in_use[m],
            nodes=len(per_node.get(m, [])),
            cards_per_node=min(per_node.get(m, [0])),
        )
        for m, n in sorted(total.items())
    )
    return CapacityReport(
        pools=pools,
        cpu_cores=float(cpus),
        cpu_cores_free=float(cpus_free),
        memory_gb=round(mem_mb / MB_PER_GB, 3),
        memory_gb_free=round(mem_free_mb / MB_PER_GB, 3),
    )


def run_scontrol_nodes(env: Mapping[str, str] | None, timeout_s: float) -> list[SlurmNode]:
    """Run `scontrol -d show node -o` and parse it; raises CapacityError."""
    try:
        proc = subprocess.run(
            list(SCONTROL_NODES),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise CapacityError("scontrol not found; is Slurm installed on this host?") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CapacityError(f"scontrol failed: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CapacityError(f"scontrol show node failed (rc={proc.returncode}): {detail}")
    nodes = parse_scontrol_nodes(proc.stdout)
    if not nodes:
        raise CapacityError("scontrol show node listed no nodes")
    return nodes


class SlurmSource:
    """Probes the cluster with `scontrol`; Slurm itself accounts for running work."""

    name = "slurm"
    tracks_usage = True

    def __init__(
        self,
        *,
        partition: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        gres_models: Mapping[str, str] | None = None,
    ) -> None:
        self._partition = partition
        self._env = dict(env) if env is not None else None
        self._timeout_s = timeout_s
        self._models = GresModels.of(gres_models)
        self._warned: set[str] = set()
        self._uneven: dict[str, tuple[int, ...]] = {}
        self.warnings: list[str] = []
        """Warning lines of the last probe (unmapped GRES types), for `computenet-agent check`."""

    def probe(self) -> CapacityReport:
        """Run `scontrol -d show node -o` and summarize it; warn once per unmapped GRES type."""
        nodes = run_scontrol_nodes(self._env, self._timeout_s)
        chosen = [n for n in nodes if self._partition is None or self._partition in n.partitions]
        unmapped = unmapped_types(chosen, self._models)
        self.warnings = [unmapped_warning(t) for t in unmapped]
        for gres_type, line in zip(unmapped, self.warnings, strict=True):
            if gres_type not in self._warned:
                self._warned.add(gres_type)
                log.warning("%s gres_type=%s", line, gres_type)
        uneven = uneven_pools(chosen, self._models)
        for model, counts in uneven.items():
            if self._uneven.get(model) != counts:
                log.info(
                    "nodes of one pool hold different card counts model=%s cards_per_node=%s "
                    "reported=%d (the smallest: a gang of whole nodes fits on any of them)",
                    model,
                    ",".join(map(str, counts)),
                    counts[0],
                )
        self._uneven = uneven
        return summarize(nodes, self._partition, self._models)

"""Slurm GRES GPU types as accelerator models of the topology, and pools' node shapes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import yaml

from site_agent.executors.slurm_jobs import GresShape

if TYPE_CHECKING:
    from site_agent.capacity.slurm import SlurmNode

log = logging.getLogger(__name__)


@functools.cache
def topology_models() -> frozenset[str]:
    """Accelerator model ids of the built-in topology's catalogue (topology/data/china.yaml)."""
    try:
        text = (resources.files("topology") / "data" / "china.yaml").read_text(encoding="utf-8")
        catalogue = yaml.safe_load(text).get("accelerators") or {}
    except (OSError, ModuleNotFoundError, AttributeError, yaml.YAMLError) as exc:
        log.warning("cannot read the topology's accelerator catalogue error=%s", exc)
        return frozenset()
    return frozenset(str(model).lower() for model in catalogue)


@dataclass(frozen=True, slots=True)
class GresModels:
    """Which topology model each Slurm GRES type is: the configured map, else the type itself
    if it is a model id of the topology; other types are unmapped and count no cards."""

    mapping: Mapping[str, str]
    known: frozenset[str]

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None = None) -> GresModels:
        lowered = {k.lower(): v for k, v in (mapping or {}).items()}
        return cls(lowered, topology_models())

    def model(self, gres_type: str) -> str | None:
        """The model id of a GRES type (lower-cased, as parse_gres gives it), or None."""
        if gres_type in self.mapping:
            return self.mapping[gres_type]
        return gres_type if gres_type in self.known else None

    def gres_types(self, model: str) -> list[str]:
        """GRES types that count as `model` (the configured ones first)."""
        mapped = [t for t, m in self.mapping.items() if m == model]
        return mapped + ([model] if model in self.known and model not in self.mapping else [])


def unmapped_types(nodes: Sequence[SlurmNode], models: GresModels) -> list[str]:
    """GRES GPU types on these nodes that map to no model (their cards are not offered)."""
    types = {t for node in nodes for t in node.gpus}
    return sorted(t for t in types if models.model(t) is None)


def unmapped_warning(gres_type: str) -> str:
    """The warning line for one unmapped GRES type (logged at start, printed by check)."""
    return (
        f"slurm GRES type {gres_type!r} maps to no accelerator model: its cards are not "
        f"offered; add it to capacity.gres_models (e.g. {{{gres_type}: a800}})"
    )


def by_model(gpus: Mapping[str, int], models: GresModels) -> dict[str, int]:
    counts: dict[str, int] = {}
    for gres_type, count in gpus.items():
        model = models.model(gres_type)
        if model is not None:
            counts[model] = counts.get(model, 0) + count
    return counts


def uneven_pools(nodes: Sequence[SlurmNode], models: GresModels) -> dict[str, tuple[int, ...]]:
    """Models whose nodes hold different card counts -> the counts found (smallest first)."""
    counts: dict[str, set[int]] = {}
    for node in nodes:
        for model, count in by_model(node.gpus, models).items():
            if count > 0:
                counts.setdefault(model, set()).add(count)
    return {m: tuple(sorted(c)) for m, c in counts.items() if len(c) > 1}


def node_shapes(nodes: Sequence[SlurmNode]) -> dict[str, tuple[int, int]]:
    """(nodes, cards per node) per GRES type: the smallest count where nodes differ."""
    per_type: dict[str, list[int]] = {}
    for node in nodes:
        for gres_type, count in node.gpus.items():
            if count > 0:
                per_type.setdefault(gres_type, []).append(count)
    return {t: (len(counts), min(counts)) for t, counts in per_type.items()}


def gres_shape(
    nodes: Sequence[SlurmNode], model: str, models: GresModels, partition: str | None = None
) -> GresShape | None:
    """The GRES type to ask sbatch for to get cards of `model`, with its node shape.

    Of the types counting as the model, the one with the most nodes (then cards per node).
    """
    chosen = [n for n in nodes if partition is None or partition in n.partitions]
    shapes = node_shapes(chosen)
    candidates = [GresShape(t, *shapes[t]) for t in models.gres_types(model.lower()) if t in shapes]
    return max(candidates, key=lambda s: (s.nodes, s.cards_per_node), default=None)

"""Which catalogue model stands for each trace's own GPU, and which models trace jobs accept."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from computenet.workload import WorkloadJob
from topology import Topology

INFERENCE_PARTS = frozenset({"h20", "domestic-infer"})
"""Catalogue parts built for serving (NVIDIA's H20 export part, Qingyang's domestic inference
card): trace training and batch jobs do not accept them; inference accepts every part."""


@dataclass(frozen=True, slots=True)
class TraceGpu:
    """The GPU a trace's durations were measured on, and the work it ran."""

    gpu: str
    tflops_fp16: float
    """Dense FP16/BF16 throughput of that GPU (vendor datasheet), the basis of the mapping."""
    workload: str
    """Workload class of the catalogue's throughput matrix the trace's jobs belong to."""


PHILLY_GPU = TraceGpu(gpu="P100", tflops_fp16=21.2, workload="vision-training")
"""Philly (2017) ran on P100/P40-era GPUs (P100 SXM2: 21.2 FP16 TFLOPS; P40 has no fast FP16):
CNN and LSTM training of its day, closer to MLPerf's ResNet-50 than to LLM training."""
ALIBABA_2023_GPU = TraceGpu(gpu="T4", tflops_fp16=65.0, workload="generic")
"""The 2023 cluster's nodes are P100, T4, V100, A10 and internal G2/G3 models; pods do not say
which they ran on (gpu_spec is empty), so the most numerous known model, the T4, stands for it."""


def training_parts(topology: Topology) -> tuple[str, ...]:
    """Models of the federation's pools that training and batch jobs accept, in topology order."""
    seen: dict[str, None] = {}
    for site in topology.sites:
        for pool in site.pools:
            if pool.model not in INFERENCE_PARTS:
                seen.setdefault(pool.model, None)
    return tuple(seen)


def closest_model(tflops: float, models: Sequence[str], topology: Topology) -> str:
    """The model whose dense BF16 TFLOPS is nearest on a log scale (ties: the first listed)."""
    if not models:
        raise ValueError("no model to choose a reference from")
    return min(
        models,
        key=lambda m: abs(math.log(max(topology.accelerator(m).tflops_bf16, 1e-9) / tflops)),
    )


def accept_training_parts(
    jobs: Sequence[WorkloadJob], topology: Topology, gpu: TraceGpu
) -> list[WorkloadJob]:
    """Training and batch jobs that name no model accept every training part, with the part
    closest to the trace's GPU as the reference their duration is on. Inference jobs and jobs
    naming a model are kept as they are (inference accepts any model, unscaled)."""
    parts = training_parts(topology)
    if not parts:
        return list(jobs)
    reference = closest_model(gpu.tflops_fp16, parts, topology)
    return [
        dataclasses.replace(job, accelerators=parts, reference=reference, workload=gpu.workload)
        if job.kind != "inference" and not job.accelerator and not job.accelerators
        else job
        for job in jobs
    ]

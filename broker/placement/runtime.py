"""How long a job runs at an option: its duration on the reference model over the option's speed.

A job's `duration_hours` is estimated on its reference model; on a model `speed` times as fast
for the job's workload class it runs `duration / speed` hours, and every cost that grows with
run time (energy, carbon, lost work, the delay it imposes on a queue, the hold) uses that.
A serving job is the exception: it serves its users for its window whatever the card, so its
run time is its duration on every model.
"""

from __future__ import annotations

import numpy as np

from broker.placement.demand import DemandArrays, JobDemand
from broker.placement.tables import EvalContext, FederationTable, FloatArray, IntArray
from topology import Topology, UnknownAcceleratorError


def scales(job: JobDemand) -> bool:
    """True if the job's run time depends on the model it runs on."""
    return bool(job.reference) and not job.serving and job.cards > 0


def run_hours(job: JobDemand, topology: Topology, model: str) -> float:
    """Hours the job runs on `model` (its duration if it does not scale or a model is unknown)."""
    if not scales(job) or not model:
        return job.duration_h
    try:
        return job.duration_h / topology.speed(model, job.reference, job.workload)
    except UnknownAcceleratorError:
        return job.duration_h


def run_hours_many(jobs: DemandArrays, ctx: EvalContext, opts: IntArray) -> FloatArray:
    """Run hours of each job (rows) at each option (columns)."""
    return run_hours_table(jobs, ctx.table, opts)


def run_hours_table(jobs: DemandArrays, table: FederationTable, opts: IntArray) -> FloatArray:
    """`run_hours_many` from the federation table alone."""
    out = np.repeat(jobs.duration_h[:, None], opts.size, axis=1)
    scaling = ~jobs.serving & (jobs.cards > 0)  # as `scales`, for every job at once
    if not scaling.any():
        return out
    for (reference, workload), rows in jobs.groups(lambda d: (d.reference, d.workload)):
        rows = rows[scaling[rows]]
        if reference and rows.size:
            out[rows] = (
                jobs.duration_h[rows, None] / table.speeds(reference, workload)[opts][None, :]
            )
    return out

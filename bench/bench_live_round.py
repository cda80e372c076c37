"""The live placement round: the broker's own loop placing a pending queue over many sites.

Unlike bench_placement (the optimiser alone), this runs what a served broker runs each round:
the snapshot read from the capacity ledger and site reports, the joint solve, one explanation
per distinct job shape, and the placements written with their holds to a real SQLite store.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_placement import job_templates
from broker.jobflow.capacity_view import CapacityView
from broker.jobflow.driver import JobDriver
from broker.jobflow.placement_loop import LoopTiming, PlacementLoop
from broker.placement import Policy
from broker.sites.registry import SiteRegistry
from broker.sites.sessions import SessionTable
from broker.store import open_store
from broker.store.protocol import NewJob
from broker.writer import StoreWriter
from computenet.spec import parse_spec
from computenet.types import CapacityReport, JobId, PoolCapacity, SiteId, TenantId
from topology import Topology, synthetic_topology

SUBMIT_BATCH = 500


def _registry(topology: Topology, seed: int) -> SiteRegistry:
    """Every site reporting, with a random share of each pool busy with work of others."""
    rng = np.random.default_rng(seed + 2)
    now = time.monotonic()
    registry = SiteRegistry(
        [(SiteId(s.id), s.name, s.province, s.side) for s in topology.sites],
        suspect_after_s=3600.0,
        lost_after_s=7200.0,
        now_s=now,
    )
    for site in topology.sites:
        share = float(rng.uniform(0.05, 0.5))
        pools = tuple(
            PoolCapacity(p.model, p.count, p.count, in_use=p.count - int(p.count * share))
            for p in site.pools
        )
        report = CapacityReport(
            pools=pools,
            cpu_cores=float(site.cpu_cores),
            cpu_cores_free=site.cpu_cores * share,
            memory_gb=float(site.memory_gb),
            memory_gb_free=site.memory_gb * share,
        )
        registry.reported(SiteId(site.id), report, now_s=now, now_unix_ms=int(time.time() * 1000))
    return registry


def _queue(topology: Topology, n_jobs: int, n_templates: int, seed: int) -> list[NewJob]:
    rng = np.random.default_rng(seed + 1)
    templates = [parse_spec(t) for t in job_templates(topology, n_templates, seed)]
    now_ms = int(time.time() * 1000)
    jobs = []
    for i in range(n_jobs):
        spec = templates[
            i % len(templates) if n_templates >= n_jobs else int(rng.integers(0, len(templates)))
        ]
        priority = int(rng.choice([0, 0, 0, 10, 100]))
        jobs.append(
            NewJob(
                job_id=JobId(f"j{i:06d}"),
                tenant=TenantId("bench"),
                request_id=f"r{i}",
                spec=spec.model_copy(update={"priority": priority}),
                time_unix_ms=now_ms + i,
            )
        )
    return jobs


async def _one_round(
    folder: Path, n_sites: int, n_jobs: int, n_templates: int, budget_s: float, seed: int
) -> dict[str, Any]:
    topology = synthetic_topology(n_sites, max(10, n_sites // 20), n_sites * 4, seed)
    store = open_store(f"sqlite:///{folder / f'live-{seed}.db'}")
    jobs = _queue(topology, n_jobs, n_templates, seed)
    for i in range(0, len(jobs), SUBMIT_BATCH):
        store.submit_jobs(jobs[i : i + SUBMIT_BATCH])
    writer = StoreWriter(store)
    registry = _registry(topology, seed)
    capacity = CapacityView(writer=writer, registry=registry, topology=topology)
    loop = PlacementLoop(
        writer=writer,
        registry=registry,
        capacity=capacity,
        driver=JobDriver(writer, SessionTable()),
        policy=Policy.default(),
        timing=LoopTiming(round_budget_s=budget_s),
    )
    await loop.load_pending()
    started = time.perf_counter()
    placed = await loop.place_pending()
    wall_s = time.perf_counter() - started
    stats = loop.last_round
    assert stats is not None
    held = len(await writer.read(store.holds))
    writer.close()
    return {
        "round_s": round(wall_s, 3),
        "snapshot_s": round(stats.snapshot_s, 3),
        "solve_s": round(stats.solve_s, 3),
        "explain_s": round(stats.explain_s, 3),
        "write_s": round(stats.write_s, 3),
        "placed": placed,
        "holds_written": held,
        "method": stats.method,
        "gap_to_lp_bound": round(stats.gap, 4),
    }


def live_round(
    n_sites: int, n_jobs: int, n_templates: int, budget_s: float, repeats: int
) -> dict[str, Any]:
    """Median of `repeats` first rounds over fresh stores (the same queue and reports)."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            runs.append(
                asyncio.run(
                    _one_round(Path(tmp), n_sites, n_jobs, n_templates, budget_s, 11 + 0 * r)
                )
            )
    rounds = [run["round_s"] for run in runs]
    return {
        "sites": n_sites,
        "jobs": n_jobs,
        "templates": n_templates,
        "round_budget_s": budget_s,
        "round_s_median": round(statistics.median(rounds), 3),
        "runs": runs,
    }


def run(smoke: bool) -> dict[str, Any]:
    """The live round at the issue's scale (10,000 jobs x 1,000 sites); smoke runs tiny sizes."""
    if smoke:
        return {"live_round": live_round(50, 300, 30, 0.5, 1)}
    return {
        "live_round": live_round(1000, 10_000, 300, 1.5, 3),
        "live_round_distinct": live_round(1000, 10_000, 10_000, 1.5, 3),
    }

"""Topology benchmark: build time, peak memory and per-lookup cost at federation scale."""

from __future__ import annotations

import random
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

from topology import Topology
from topology.synthetic import synthetic_parts

FULL = {"n_sites": 2000, "n_regions": 300, "n_links": 20000}
SMOKE = {"n_sites": 50, "n_regions": 10, "n_links": 200}
_BATCH = 1000


def _median_ns(
    call: Callable[[str, str], object], pairs: Sequence[tuple[str, str]], batches: int
) -> float:
    """Median over batches of the mean time of one call, in nanoseconds."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for a, b in pairs:
            call(a, b)
        samples.append((time.perf_counter_ns() - start) / len(pairs))
    return round(statistics.median(samples), 1)


def run(smoke: bool) -> dict[str, object]:
    """Generate, build and query a seeded synthetic topology; return timings and memory."""
    size = SMOKE if smoke else FULL
    started = time.perf_counter()
    sites, regions, links = synthetic_parts(**size, seed=20240611)
    generate_s = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    topo = Topology(sites, regions, links)
    build_s = time.perf_counter() - started
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rng = random.Random(7)
    nodes = [*topo.site_ids, *topo.region_ids]
    site_ids = list(topo.site_ids)
    pairs = [(rng.choice(site_ids), rng.choice(nodes)) for _ in range(_BATCH)]
    batches = 20 if smoke else 200
    energy = _median_ns(lambda s, _: topo.energy_cost_cny(s, 100.0, 7.25, 30.5), pairs, batches)
    return {
        **size,
        "links_built": len(topo.links),
        "generate_seconds": round(generate_s, 3),
        "build_seconds": round(build_s, 3),
        "build_peak_traced_mb": round(peak_bytes / 2**20, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rtt_lookup_median_ns": _median_ns(topo.rtt_ms, pairs, batches),
        "bottleneck_lookup_median_ns": _median_ns(topo.bottleneck_gbps, pairs, batches),
        "transfer_hours_median_ns": _median_ns(
            lambda a, b: topo.transfer_hours(a, b, 500.0), pairs, batches
        ),
        "energy_cost_median_ns": energy,
        "lookups_per_batch": _BATCH,
        "batches": batches,
    }

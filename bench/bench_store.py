"""Store benchmark: durable submissions per second through submit_jobs on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.ha_cluster import postgres_database
from broker.store import NewJob, SqlStore, open_store
from computenet.spec import JobSpec
from computenet.types import JobId, TenantId

BATCH_SIZES = (1, 16, 64)
FULL = {"jobs_per_round": {1: 400, 16: 2048, 64: 4096}, "rounds": 5}
SMOKE = {"jobs_per_round": {1: 4, 16: 32, 64: 64}, "rounds": 2}

_SPEC = JobSpec.model_validate(
    {
        "name": "bench",
        "kind": "training",
        "duration_hours": 12,
        "command": ["torchrun", "train.py", "--config", "llm-7b.yaml"],
        "resources": {"accelerator": "a100", "count": 64, "cpu_cores": 128, "memory_gb": 1024},
        "dataset": {"origin": "beijing", "size_gb": 800},
        "labels": {"team": "nlp", "project": "bench"},
    }
)


def run(smoke: bool) -> dict[str, object]:
    """Median submissions/s and batch latency per batch size, per database."""
    plan = SMOKE if smoke else FULL
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        url = f"sqlite:///{Path(folder) / 'store.db'}"
        results["sqlite"] = _measure(url, plan)
    with postgres_database("bench_store") as (pg_url, skipped):
        results["postgresql"] = _measure(pg_url, plan) if pg_url else {"skipped": skipped}
    return results


def _measure(url: str, plan: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    with open_store(url) as store:
        for size in BATCH_SIZES:
            rates, latencies_ms = [], []
            for round_no in range(plan["rounds"]):
                batches = _batches(f"b{size}-r{round_no}", plan["jobs_per_round"][size], size)
                rate, latency = _round(store, batches)
                rates.append(rate)
                latencies_ms += latency
            out[f"batch_{size}"] = {
                "submissions_per_s_median": round(statistics.median(rates)),
                "batch_latency_ms_p50": round(statistics.median(latencies_ms), 3),
                "batch_latency_ms_p99": round(_quantile(latencies_ms, 0.99), 3),
                "rounds": plan["rounds"],
                "jobs_per_round": plan["jobs_per_round"][size],
            }
    return out


def _batches(prefix: str, jobs: int, size: int) -> list[list[NewJob]]:
    now_ms = time.time_ns() // 1_000_000
    submissions = [
        NewJob(JobId(f"{prefix}-{i}"), TenantId("bench"), f"{prefix}-{i}", _SPEC, now_ms)
        for i in range(jobs)
    ]
    return [submissions[i : i + size] for i in range(0, jobs, size)]


def _round(store: SqlStore, batches: list[list[NewJob]]) -> tuple[float, list[float]]:
    latencies_ms = []
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        store.submit_jobs(batch)
        latencies_ms.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return sum(len(b) for b in batches) / elapsed, latencies_ms


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

"""Closed-loop submission load from several processes, each running many concurrent clients."""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import uuid
from dataclasses import dataclass

import grpc

from computenet.convert import spec_to_proto
from computenet.spec import parse_spec
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import job_service_pb2_grpc as pb_grpc

SPEC = parse_spec(
    {
        "name": "bench",
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 1},
        "duration_hours": 1.0,
        "command": ["true"],
    }
)


@dataclass(frozen=True)
class LoadResult:
    """Throughput and latency of one load run."""

    clients: int
    submissions: int
    errors: int
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float


async def _worker(address: str, clients: int, seconds: float, tag: str) -> tuple[list[float], int]:
    spec = spec_to_proto(SPEC)
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
        await channel.channel_ready()
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            nonlocal errors
            k = 0
            while time.perf_counter() < deadline:
                k += 1
                request = pb.SubmitJobRequest(spec=spec, request_id=f"{tag}-{n}-{k}")
                started = time.perf_counter()
                try:
                    await stub.SubmitJob(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, errors


def _process(args: tuple[str, int, float, str]) -> tuple[list[float], int]:
    return asyncio.run(_worker(*args))


def run_load(address: str, clients: int, seconds: float, processes: int = 2) -> LoadResult:
    """Run `clients` closed-loop submitters spread over `processes` processes for `seconds`."""
    processes = max(1, min(processes, clients))
    shares = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    tag = uuid.uuid4().hex[:8]
    jobs = [(address, share, seconds, f"{tag}{i}") for i, share in enumerate(shares)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        parts = pool.map(_process, jobs)
    latencies = sorted(x for lat, _ in parts for x in lat)
    errors = sum(e for _, e in parts)
    n = len(latencies)
    return LoadResult(
        clients=clients,
        submissions=n,
        errors=errors,
        seconds=round(seconds, 3),
        per_s=round(n / seconds, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3) if n else 0.0,
        p99_ms=round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3) if n else 0.0,
    )

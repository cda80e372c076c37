"""A thousand sites: broker CPU, memory, dispatch latency and heartbeat lag under agent load.

A real broker (SQLite file, insecure on loopback, rebalancing off) serves a generated federation
(`topology.generate`); simulated agents (`bench.sim_agents`), one real Connect stream and
connection each, spread over a few worker processes, report capacity every heartbeat interval
and run what they are dispatched for a fixed time. Jobs are submitted at a steady rate. After a
warm-up, over the measurement window:

- broker CPU: utime + stime from /proc of the broker and its child (the submission writer),
  as cores over the window, and the median of 5-second intervals;
- broker RSS (VmRSS, broker and child) and open descriptors, sampled every 5 s;
- dispatch latency: from SubmitJob answering (job durable) to the dispatch reaching its
  simulated agent, per job submitted in the window (one machine, one wall clock);
- heartbeat lag: from an agent writing a capacity report to the broker stamping it as the
  site's last report (`last_report_unix_ms`, taken when the report's handler runs), read by
  listing the sites every 5 s (that listing is part of the load the CPU figure includes).

`python -m bench.bench_sites --help` runs it with other sizes and can profile the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import yaml

from bench import procstat
from bench.profile_summary import summarise
from bench.sim_agents import SiteShape, WorkerArgs, WorkerResult, worker_main
from bench.sites_figures import Timeline, dispatch_latency, heartbeat_lag
from bench.sites_figures import resources as broker_resources
from computenet.convert import spec_to_proto
from computenet.spec import parse_spec
from computenet.v1 import federation_service_pb2 as fpb
from computenet.v1 import federation_service_pb2_grpc as fgrpc
from computenet.v1 import job_service_pb2 as jpb
from computenet.v1 import job_service_pb2_grpc as jgrpc
from computenet.v1 import types_pb2
from tests.support.processes import BrokerProcess, start_broker
from topology import parse_topology
from topology.generate import generate_yaml

SAMPLE_EVERY_S = 5.0
MODELS = ("a800", "h20", "910b")
TARGET_CORES = 0.5
TARGET_DISPATCH_P99_MS = 100.0
PROFILE_ENV = "COMPUTENET_BENCH_PROFILE"


@dataclass(frozen=True)
class Load:
    """The load of one run."""

    sites: int
    workers: int
    heartbeat_s: float
    submit_per_s: float
    run_s: float
    """How long each job 'runs' at its simulated agent."""
    warmup_s: float
    measure_s: float
    seed: int = 1


FULL = Load(
    sites=1000,
    workers=4,
    heartbeat_s=5.0,
    submit_per_s=10.0,
    run_s=20.0,
    warmup_s=30.0,
    measure_s=120.0,
)
SMOKE = Load(
    sites=50, workers=2, heartbeat_s=5.0, submit_per_s=5.0, run_s=2.0, warmup_s=5.0, measure_s=10.0
)


def _spec(n: int) -> Any:
    return spec_to_proto(
        parse_spec(
            {
                "name": f"sites-{n}",
                "kind": "batch",
                "resources": {
                    "accelerator": MODELS[n % len(MODELS)],
                    "count": 8,
                    "cpu": 16,
                    "memory_gb": 128,
                },
                "duration_hours": 0.05,
                "command": ["true"],
            }
        )
    )


def _shapes(topology_yaml: str) -> list[SiteShape]:
    topo = parse_topology(topology_yaml)
    return [
        SiteShape(s.id, tuple((p.model, p.count) for p in s.pools), s.cpu_cores, s.memory_gb)
        for s in topo.sites
    ]


def _broker_config(work: Path, load: Load) -> Path:
    config = {
        "topology": {"path": str(work / "federation.yaml")},
        "liveness": {
            "suspect_after_s": max(15.0, 3 * load.heartbeat_s),
            "lost_after_s": max(60.0, 12 * load.heartbeat_s),
            "heartbeat_interval_s": load.heartbeat_s,
        },
        "rebalance": {"every_s": 0, "tou_triggers": False},
        "limits": {"submit_rate_per_s": 0},
    }
    path = work / "broker.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def _workers(
    address: str, shapes: list[SiteShape], load: Load
) -> Iterator[tuple[list[Any], Any, list[WorkerResult]]]:
    """Worker processes holding the agents; yields (processes, stop event, results list).

    The results list is filled when the block ends (the workers are stopped then).
    """
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    results_queue = ctx.Queue()
    readies = []
    procs = []
    for w in range(load.workers):
        args = WorkerArgs(
            address=address,
            sites=tuple(shapes[w :: load.workers]),
            heartbeat_s=load.heartbeat_s,
            run_s=load.run_s,
            seed=load.seed * 1000 + w,
        )
        ready = ctx.Event()
        proc = ctx.Process(target=worker_main, args=(args, stop, ready, results_queue))
        proc.start()
        procs.append(proc)
        readies.append(ready)
    results: list[WorkerResult] = []
    try:
        deadline = time.monotonic() + 60.0 + load.sites / 20.0
        for ready in readies:
            if not ready.wait(max(0.1, deadline - time.monotonic())):
                raise RuntimeError("the simulated agents were not all welcomed in time")
        yield procs, stop, results
    finally:
        stop.set()
        for _ in procs:
            try:
                results.append(results_queue.get(timeout=60))
            except Exception:  # a worker died: its share is missing from the results
                break
        for proc in procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


async def _wait_active(address: str, n_sites: int, timeout_s: float) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = fgrpc.FederationServiceStub(channel)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout_s
        active = 0
        while time.monotonic() < deadline:
            reply = await stub.ListSites(
                fpb.ListSitesRequest(status=types_pb2.SITE_STATUS_ACTIVE), timeout=30
            )
            active = len(reply.sites)
            if active >= n_sites:
                return
            await asyncio.sleep(1.0)
        raise RuntimeError(f"only {active} of {n_sites} sites active after {timeout_s:g} s")


async def _drive(broker: BrokerProcess, load: Load, agent_pids: list[int]) -> Timeline:
    """Submit at a steady rate through warm-up and window; sample the broker in the window."""
    pid = broker.proc.pid
    specs = [_spec(n) for n in range(len(MODELS))]
    submitted: dict[str, tuple[float, float]] = {}
    errors: dict[str, int] = defaultdict(int)
    stamps: set[tuple[str, int]] = set()
    samples: list[dict[str, float]] = []
    window = [0.0, 0.0]
    in_window = False
    tag = f"b{int(time.time())}"
    async with grpc.aio.insecure_channel(broker.address) as channel:
        jobs = jgrpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
        federation = fgrpc.FederationServiceStub(channel)  # type: ignore[no-untyped-call]
        pending: set[asyncio.Task[None]] = set()

        async def submit(n: int) -> None:
            request = jpb.SubmitJobRequest(spec=specs[n % len(specs)], request_id=f"{tag}-{n}")
            sent = time.time()
            try:
                reply = await jobs.SubmitJob(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                return
            if in_window:
                submitted[reply.job.job_id] = (sent, time.time())

        def sample() -> None:
            reading = procstat.usage(pid)
            if reading is None:
                raise RuntimeError("the broker exited during the benchmark")
            samples.append(
                {
                    "t": time.time(),
                    "cpu_s": reading.cpu_s,
                    "main_cpu_s": reading.main_cpu_s,
                    "rss_kb": reading.rss_kb,
                    "main_rss_kb": reading.main_rss_kb,
                    "fds": reading.fds,
                    "agents_cpu_s": procstat.cpu_s(agent_pids),
                }
            )

        async def probe() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await federation.ListSites(fpb.ListSitesRequest(), timeout=30)
                if in_window:
                    stamps.update((s.site_id, s.last_report_unix_ms) for s in reply.sites)

        start = time.monotonic()
        warm_end = start + load.warmup_s
        end = warm_end + load.measure_s
        period = 1.0 / load.submit_per_s
        next_submit = next_sample = start
        n = 0
        while (now := time.monotonic()) < end:
            if not in_window and now >= warm_end:
                in_window = True
                window[0] = time.time()
                sample()
                next_sample = now + SAMPLE_EVERY_S
            if now >= next_submit:
                task = asyncio.create_task(submit(n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                next_submit += period
                if now - next_submit > period:
                    next_submit = now + period  # behind schedule: skip, do not burst
            if in_window and now >= next_sample:
                sample()
                task = asyncio.create_task(probe())
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_sample += SAMPLE_EVERY_S
            await asyncio.sleep(max(0.0, min(next_submit, next_sample, end) - time.monotonic()))
        window[1] = time.time()
        sample()
        in_window = False
        if pending:
            await asyncio.wait(pending, timeout=30)
        # Let the window's last jobs reach their agents before the agents stop.
        await asyncio.sleep(min(5.0, load.run_s))
    return Timeline(submitted, dict(errors), stamps, samples, (window[0], window[1]))


@contextlib.contextmanager
def _profiler(pid: int, seconds: float, out: Path | None) -> Iterator[None]:
    """py-spy (if installed and `out` given) sampling the broker for `seconds`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if out is None or not Path(spy).exists():
        yield
        return
    cmd = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50"]
    cmd += ["--threads", "-f", "raw", "-o", str(out), "--nonblocking"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


def measure(load: Load, profile_to: Path | None = None) -> dict[str, Any]:
    """Run the benchmark at `load`; returns the figures (and writes a profile if asked)."""
    started = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="computenet-sites-") as tmp:
        work = Path(tmp)
        text = generate_yaml(load.sites, load.seed)
        (work / "federation.yaml").write_text(text)
        shapes = _shapes(text)
        broker = start_broker(
            work,
            "--config",
            str(_broker_config(work, load)),
            "--log-level",
            "WARNING",
            db_url=f"sqlite:///{work / 'broker.db'}",
        )
        try:
            connect_started = time.monotonic()
            with _workers(broker.address, shapes, load) as (procs, _stop, results):
                asyncio.run(_wait_active(broker.address, load.sites, 60.0 + load.sites / 20))
                connected_s = time.monotonic() - connect_started
                pids = [p.pid for p in procs if p.pid is not None]
                with _profiler(broker.proc.pid, load.warmup_s + load.measure_s, profile_to):
                    timeline = asyncio.run(_drive(broker, load, pids))
        finally:
            broker.proc.terminate()
            try:
                broker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                broker.proc.kill()
                broker.proc.wait(timeout=10)
            if broker.proc.stdout is not None:
                broker.proc.stdout.close()
    if profile_to is not None and profile_to.exists():
        profile: dict[str, object] | None = summarise(profile_to)
    else:
        profile = None
    resources = broker_resources(timeline)
    dispatch = dispatch_latency(timeline, results)
    lag = heartbeat_lag(timeline, results)
    p99 = dispatch["after_submit_answered"]["p99_ms"]
    errors: dict[str, int] = defaultdict(int)
    for r in results:
        for code, count in r.stream_errors.items():
            errors[code] += count
    return {
        "load": asdict(load),
        "all_agents_connected_s": round(connected_s, 1),
        "resources": resources,
        "dispatch_latency": dispatch,
        "heartbeat_lag": lag,
        "agents": {
            "workers": len(results),
            "sessions": sum(r.sessions for r in results),
            "connected_at_end": sum(r.connected_at_end for r in results),
            "stream_errors": dict(errors),
            "job_events_sent": sum(r.job_events for r in results),
            "cancels": sum(r.cancels for r in results),
        },
        "submit_errors": timeline.submit_errors,
        "targets": {
            "broker_cores_max": TARGET_CORES,
            "dispatch_p99_ms_max": TARGET_DISPATCH_P99_MS,
            "cores_met": resources["broker_cores"] <= TARGET_CORES,
            "dispatch_p99_met": p99 is not None and p99 <= TARGET_DISPATCH_P99_MS,
        },
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.monotonic() - started, 1),
        "summary": _summary(load, resources, dispatch, lag),
        **({"profile": profile} if profile is not None else {}),
    }


def _summary(load: Load, res: dict[str, Any], dispatch: dict[str, Any], lag: dict[str, Any]) -> str:
    d = dispatch["after_submit_answered"]
    return (
        f"{load.sites} sites, heartbeat {load.heartbeat_s:g} s, {load.submit_per_s:g} jobs/s, "
        f"{res['window_s']:g} s measured: broker {res['broker_cores']:.3f} cores "
        f"(5 s median {res['broker_cores_median_5s']}), RSS {res['broker_rss_mb_end']:g} MB; "
        f"dispatch p50 {d['p50_ms']} ms p99 {d['p99_ms']} ms ({d['count']} jobs); "
        f"heartbeat lag p50 {lag['p50_ms']} ms p99 {lag['p99_ms']} ms ({lag['count']} reports)"
    )


def run(smoke: bool) -> dict[str, Any]:
    """The benchmark at its full size, or a tiny one that checks it still runs."""
    profile = os.environ.get(PROFILE_ENV, "").strip()
    result = measure(SMOKE if smoke else FULL, Path(profile) if profile else None)
    print(f"   {result['summary']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run once with the given load; print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sites", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="start from the smoke load")
    for name in ("sites", "workers", "heartbeat_s", "submit_per_s", "run_s", "warmup_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    parser.add_argument("--measure-s", type=float, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw output file")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    load = SMOKE if args.smoke else FULL
    changes = {
        k: (int(v) if k in ("sites", "workers") else v)
        for k in ("sites", "workers", "heartbeat_s", "submit_per_s", "run_s", "warmup_s")
        if (v := getattr(args, k)) is not None
    }
    if args.measure_s is not None:
        changes["measure_s"] = args.measure_s
    result = measure(replace(load, **changes), args.profile)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

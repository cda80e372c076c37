"""Web console page loads: the sites and jobs pages of a broker holding 10 sites and 10,000 jobs.

A real broker subprocess (SQLite file, insecure on loopback, a token file so pages need a login)
serves the default topology (10 sites) and the console; its database is seeded beforehand with
10,000 jobs of four tenants through the store's own submission path (they wait, pending, as no
agent is connected: the placement loop keeps working on them during the measurement). An HTTP
client signs in once, then loads each page repeatedly, one request at a time; a load is the time
from sending the request to having the whole HTML answer. The jobs page is measured on its first
page and on a page deep in the listing (its page token), and filtered by state and tenant; the
queue page (admission order over every pending job), its tenants table and the usage page are
timed alongside.

Target: median load of the sites and jobs pages <= 300 ms (`ok` in the result).
`python -m bench.bench_console --help` runs other sizes.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from broker.security.principal import Role
from broker.security.tokens import add_token
from broker.store import NewJob, open_store
from computenet.spec import JobSpec
from computenet.types import JobId, TenantId
from tests.support.processes import start_broker, wait_for_line

TARGET_MEDIAN_MS = 300.0
FULL = {"jobs": 10_000, "loads": 40}
SMOKE = {"jobs": 500, "loads": 5}
TENANTS = ("tenant-a", "tenant-b", "tenant-c", "tenant-d")
_CONSOLE = re.compile(r"console on (\S+)")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NEXT = re.compile(r'href="/jobs\?([^"]*page_token=[^"]+)" id="next-page"')

SPECS = [
    JobSpec.model_validate(spec)
    for spec in (
        {
            "name": "llm-pretrain",
            "kind": "training",
            "duration_hours": 48,
            "resources": {"accelerator": "a800", "count": 64},
            "dataset": {"origin": "shanghai", "size_gb": 800},
            "command": ["torchrun", "train.py"],
        },
        {
            "name": "chat-serving",
            "kind": "inference",
            "duration_hours": 24,
            "resources": {"accelerator": "h20", "count": 8},
            "inference": {
                "user_regions": [{"region": "beijing"}, {"region": "guangzhou"}],
                "latency_slo_ms": 40,
            },
            "command": ["serve"],
        },
        {
            "name": "nightly-eval",
            "kind": "batch",
            "duration_hours": 2,
            "resources": {"accelerator": "910b", "count": 4},
            "command": ["eval.sh"],
        },
        {
            "name": "finetune",
            "kind": "training",
            "duration_hours": 6,
            "resources": {"accelerator": "h20", "count": 16},
            "dataset": {"origin": "hangzhou", "size_gb": 120},
            "command": ["torchrun", "finetune.py"],
        },
    )
]


def seed(url: str, jobs: int) -> None:
    """`jobs` pending jobs of four tenants and four shapes, through the store's submissions."""
    now_ms = int(time.time() * 1000)
    with open_store(url) as store:
        batch: list[NewJob] = []
        for i in range(jobs):
            batch.append(
                NewJob(
                    job_id=JobId(f"job-{uuid.uuid4().hex[:16]}"),
                    tenant=TenantId(TENANTS[i % len(TENANTS)]),
                    request_id=f"seed-{i}",
                    spec=SPECS[i % len(SPECS)],
                    time_unix_ms=now_ms - (jobs - i) * 1000,
                )
            )
            if len(batch) == 500:
                store.submit_jobs(batch)
                batch = []
        if batch:
            store.submit_jobs(batch)


def _load_ms(http: httpx.Client, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    answer = http.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status_code}: {answer.text[:200]}")
    return elapsed, answer.text


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def measure(jobs: int, loads: int) -> dict[str, object]:
    """Seed, start the broker, sign in, and time each page `loads` times."""
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        workdir = Path(folder)
        url = f"sqlite:///{workdir / 'broker.db'}"
        seed_started = time.perf_counter()
        seed(url, jobs)
        seed_s = time.perf_counter() - seed_started
        tokens = workdir / "tokens.yaml"
        token = add_token(tokens, "ops", tenant="ops", role=Role.OPERATOR)
        broker = start_broker(
            workdir,
            "--tokens",
            str(tokens),
            "--http-listen",
            "127.0.0.1:0",
            "--rebalance-every",
            "0",
            db_url=url,
        )
        try:
            console = wait_for_line(broker.proc, _CONSOLE).group(1)
            with httpx.Client(base_url=console, timeout=30) as http:
                form = http.get("/login").text
                csrf = _CSRF.search(form)
                assert csrf is not None
                signed = http.post("/login", data={"csrf": csrf.group(1), "token": token})
                assert signed.status_code == 303, signed.text[:200]
                _, first = _load_ms(http, "/jobs")
                deep = _deep_page(http, first, hops=min(20, jobs // 50 - 1))
                pages = {
                    "sites": "/sites",
                    "jobs": "/jobs",
                    "jobs_deep_page": f"/jobs?{deep}" if deep else "/jobs",
                    "jobs_filtered": "/jobs?state=pending&tenant=tenant-b&page_size=100",
                    "queue": "/queue",
                    "queue_tenants": "/queue/tenants",
                    "usage": "/usage",
                    "usage_by_day": "/usage?by=day&tenant=tenant-b",
                    "map": "/",
                }
                for path in pages.values():  # warm up: templates compiled, caches filled
                    _load_ms(http, path)
                samples: dict[str, list[float]] = {name: [] for name in pages}
                for _ in range(loads):
                    for name, path in pages.items():
                        samples[name].append(_load_ms(http, path)[0])
        finally:
            broker.proc.send_signal(signal.SIGTERM)
            broker.proc.wait(timeout=30)
    results: dict[str, object] = {name: _stats(s) for name, s in samples.items()}
    worst = max(results["sites"]["median_ms"], results["jobs"]["median_ms"])  # type: ignore[index]
    return {
        "jobs": jobs,
        "sites": 10,
        "loads_per_page": loads,
        "seed_s": round(seed_s, 1),
        "pages": results,
        "target_median_ms": TARGET_MEDIAN_MS,
        "ok": worst <= TARGET_MEDIAN_MS,
        "reasons": [] if worst <= TARGET_MEDIAN_MS else [f"median {worst} ms > target"],
    }


def _deep_page(http: httpx.Client, html: str, hops: int) -> str:
    """The query of the jobs page `hops` pages in, following each page's next link."""
    query = ""
    for _ in range(max(hops, 0)):
        found = _NEXT.search(html)
        if found is None:
            break
        query = found.group(1).replace("&amp;", "&")
        html = _load_ms(http, f"/jobs?{query}")[1]
    return query


def run(smoke: bool) -> dict[str, object]:
    """The benchmark at its full or smoke size."""
    plan = SMOKE if smoke else FULL
    return measure(plan["jobs"], plan["loads"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=FULL["jobs"])
    parser.add_argument("--loads", type=int, default=FULL["loads"])
    parser.add_argument("--smoke", action="store_true", help="the smoke size (CI)")
    args = parser.parse_args()
    result = run(True) if args.smoke else measure(args.jobs, args.loads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Bounded soak: a TLS broker restarted mid-run, three real agents with churn, steady mixed load;
fails on a lost or doubled job, a broken watch, or broker RSS or descriptors growing past bounds.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from bench.soak_agents import CARDS_PER_SITE, Agents, job_starts
from bench.soak_bounds import Bounds
from bench.soak_broker import SoakBroker
from computenet import Client
from computenet.errors import ComputeNetError
from computenet.types import FINAL_STATES, JobState, SiteStatus
from tests.support.pki import make_pki

SITES = ("horinger", "zhangjiakou", "yangtze-demo")
SUBMIT_RATE = 20.0  # jobs per second, over all submitter threads
SUBMITTERS = 4
CANCEL_EVERY_S = 2.0
CANCELS_PER_ROUND = 2
SAMPLE_EVERY_S = 5.0
AGENT_DOWN_S = 1.0
DRAIN_TIMEOUT_S = 120.0
SHORT_SECONDS = 40.0
AGENTS_BACK_S = 60.0
BROKER_RESTARTS = ((0.25, signal.SIGTERM), (0.45, signal.SIGKILL))
"""(fraction of the load time, signal): the broker is stopped so and started again then."""
SHORT_BROKER_RESTARTS = ((0.2, signal.SIGTERM), (0.55, signal.SIGKILL))
BOUNDS = Bounds()


class ClientSource(Protocol):
    """What the load threads need of a broker: SDK clients (one broker, or every replica)."""

    def client(self, who: str = "operator", **kwargs: object) -> Client: ...


@dataclass
class Bucket:
    """What happened in one interval of the run (a minute in a soak)."""

    acked: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    final: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cancels: Counter[str] = field(default_factory=Counter)
    rss_kb: int | None = None
    fds: int | None = None
    threads: int | None = None

    def as_dict(self, index: int | str) -> dict[str, object]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "bucket": index,
            "submissions_acked": self.acked,
            "errors_by_code": dict(self.errors),
            "final_by_state": dict(self.final),
            "cancels": dict(self.cancels),
            "submit_p50_ms": round(statistics.median(lat) * 1000, 2) if n else None,
            "submit_p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
            "broker_rss_mb": round(self.rss_kb / 1024, 1) if self.rss_kb is not None else None,
            "broker_fds": self.fds,
            "broker_threads": self.threads,
        }


class Recorder:
    """Thread-safe tallies, bucketed by time since the load started."""

    def __init__(self, bucket_s: float) -> None:
        self.bucket_s = bucket_s
        self.started = time.monotonic()
        self.draining = False
        self.lock = threading.Lock()
        self.buckets: dict[int, Bucket] = defaultdict(Bucket)
        self.drain = Bucket()
        self.acked: dict[str, str] = {}  # job id -> request id
        self.unacked: list[str] = []  # request ids whose submit failed
        self.final_events: dict[str, list[str]] = defaultdict(list)
        self.after_final: list[dict[str, object]] = []
        self.events = 0
        self.last_sequence = 0
        self.watch_breaks: Counter[str] = Counter()

    def bucket(self) -> Bucket:
        if self.draining:
            return self.drain
        return self.buckets[int((time.monotonic() - self.started) // self.bucket_s)]

    def submitted(self, job_id: str, request_id: str, seconds: float) -> None:
        with self.lock:
            b = self.bucket()
            b.acked += 1
            b.latencies.append(seconds)
            self.acked[job_id] = request_id

    def failed(self, request_id: str, code: str) -> None:
        with self.lock:
            self.bucket().errors[code] += 1
            self.unacked.append(request_id)

    def cancelled(self, outcome: str) -> None:
        with self.lock:
            self.bucket().cancels[outcome] += 1

    def event(self, job_id: str, state: JobState, sequence: int) -> None:
        with self.lock:
            self.events += 1
            self.last_sequence = max(self.last_sequence, sequence)
            if self.final_events.get(job_id):
                self.after_final.append({"job_id": job_id, "state": state, "sequence": sequence})
            if state in FINAL_STATES:
                self.final_events[job_id].append(state.value)
                self.bucket().final[state.value] += 1


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ComputeNetError):
        return exc.status_code or exc.reason
    return type(exc).__name__


def _job_spec(marker: Path) -> dict[str, Any]:
    script = (
        f'echo "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE" >> {marker}; sleep 0.2'
    )
    return {
        "name": "soak",
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 1, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.01,
        "command": ["sh", "-c", script],
    }


def _wait(predicate: Any, timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the soak runs, so its cleanup still happens."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _submitter(
    broker: ClientSource,
    who: str,
    n: int,
    rate: float,
    deadline: float,
    stop: threading.Event,
    spec: dict[str, Any],
    rec: Recorder,
    tag: str,
) -> None:
    period = 1.0 / rate
    with broker.client(who) as client:
        next_at = time.monotonic() + period * n / SUBMITTERS
        for k in itertools.count():
            now = time.monotonic()
            if now >= deadline or stop.is_set():
                return
            if next_at > now:
                stop.wait(next_at - now)
                continue
            next_at += period
            if time.monotonic() - next_at > period:
                next_at = time.monotonic() + period  # behind schedule: skip, do not burst
            request_id = f"{tag}-{n}-{k}"
            started = time.perf_counter()
            try:
                result = client.submit(spec, request_id=request_id)
            except Exception as exc:  # every failure is tallied by its code
                rec.failed(request_id, _error_code(exc))
                continue
            rec.submitted(result.job.job_id, request_id, time.perf_counter() - started)


def _canceller(broker: ClientSource, deadline: float, stop: threading.Event, rec: Recorder) -> None:
    with broker.client("operator") as client:
        while not stop.wait(CANCEL_EVERY_S) and time.monotonic() < deadline:
            try:
                pending = client.list_page(state=JobState.PENDING, page_size=CANCELS_PER_ROUND)
                targets: list[str] = [j.job_id for j in pending.jobs]
                if not targets:
                    with rec.lock:
                        targets = list(rec.acked)[-CANCELS_PER_ROUND:]
                    rec.cancelled("no_pending")
            except Exception as exc:  # listing failed: count it and try next round
                rec.cancelled(f"list:{_error_code(exc)}")
                continue
            for job_id in targets:
                try:
                    job = client.cancel(job_id, reason="soak")
                    rec.cancelled(f"ok:{job.state.value}")
                except Exception as exc:  # e.g. the job became final meanwhile
                    rec.cancelled(f"error:{_error_code(exc)}")


def _watcher(
    broker: ClientSource, client_box: list[Client], rec: Recorder, closing: threading.Event
) -> None:
    """Follow every job's events until `closing`, resuming after the last one across restarts."""
    client = broker.client("operator", timeout_s=30.0)
    client_box.append(client)
    while not closing.is_set():
        try:
            for event in client.watch_all(after_sequence=rec.last_sequence):
                rec.event(event.job_id, event.state, event.sequence)
        except Exception as exc:  # a broker restart outlasting the client's retries, or the end
            if closing.is_set():
                return
            with rec.lock:
                rec.watch_breaks[_error_code(exc)] += 1
            closing.wait(0.5)


def _rejoined(client: Client, site: str, since_ms: float) -> bool:
    info = client.site(site)
    return info.status == SiteStatus.ACTIVE and info.last_report_unix_ms > since_ms


def _all_jobs(client: Client) -> list[Any]:
    return list(client.list(page_size=1000))


def _all_back(broker: ClientSource, since_ms: float, timeout_s: float) -> bool:
    """Every soak site active again and reporting since `since_ms` (wall clock, ms)."""

    def back(ops: Client) -> bool:
        try:
            sites = {str(s.site_id): s for s in ops.sites()}
        except ComputeNetError:
            return False
        return all(
            x in sites
            and sites[x].status == SiteStatus.ACTIVE
            and sites[x].last_report_unix_ms > since_ms
            for x in SITES
        )

    with broker.client("operator") as ops:
        return _wait(lambda: back(ops), timeout_s, every_s=0.5)


class _Schedule:
    """Agent restarts every `agent_every_s` and broker restarts at fractions of the load time."""

    def __init__(
        self,
        started: float,
        seconds: float,
        broker_restarts: tuple[tuple[float, signal.Signals], ...],
    ) -> None:
        self.agent_every_s = min(60.0, max(5.0, seconds / 2))
        self.next_agent = started + self.agent_every_s
        self.brokers = sorted((started + f * seconds, sig) for f, sig in broker_restarts)
        self.sites = itertools.cycle(SITES)

    def broker_due(self, now: float) -> signal.Signals | None:
        if self.brokers and now >= self.brokers[0][0]:
            return self.brokers.pop(0)[1]
        return None

    def agent_due(self, now: float) -> str | None:
        if now >= self.next_agent:
            self.next_agent += self.agent_every_s
            return next(self.sites)
        return None


def _restart_agent(agents: Agents, broker: ClientSource, site: str, at_s: float) -> dict:
    agents.kill(site)
    killed_at = time.monotonic()
    restarted_ms = (time.time() + AGENT_DOWN_S) * 1000
    time.sleep(AGENT_DOWN_S)
    agents.start(site)
    with broker.client("operator") as ops:
        back = _wait(lambda: _rejoined(ops, site, restarted_ms), 30.0)
    return {
        "site": site,
        "at_s": round(at_s, 1),
        "active_again_s": round(time.monotonic() - killed_at, 2) if back else None,
    }


def _restart_broker(broker: SoakBroker, sig: signal.Signals, at_s: float) -> dict:
    signalled_ms = time.time() * 1000
    started = time.monotonic()
    away_s = broker.restart(sig)
    back = _all_back(broker.current, signalled_ms, AGENTS_BACK_S)
    return {
        "signal": sig.name,
        "at_s": round(at_s, 1),
        "listening_again_s": round(away_s, 2),
        "all_agents_back_s": round(time.monotonic() - started, 2) if back else None,
        "exit_code": broker.incarnations[-2].exit_code,
    }


def soak_run(
    seconds: float,
    bucket_s: float,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
    broker_restarts: tuple[tuple[float, signal.Signals], ...] = BROKER_RESTARTS,
    bounds: Bounds = BOUNDS,
) -> dict:
    """Run the soak for `seconds` of load, drain, check invariants and bounds; the report."""
    reasons: list[str] = []
    agent_restarts: list[dict[str, object]] = []
    restarts: list[dict[str, object]] = []
    stop, closing = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    watch_box: list[Client] = []
    broker: SoakBroker | None = None
    agents: Agents | None = None
    with tempfile.TemporaryDirectory(prefix="computenet-soak-") as tmp, _terminate_as_exit():
        work = Path(tmp)
        marker = work / "starts.txt"
        spec = _job_spec(marker)
        try:
            pki = make_pki(work / "pki")
            broker = SoakBroker(
                work,
                "--rebalance-every",
                "0",
                "--log-level",
                "WARNING",
                db_url=f"sqlite:///{work / 'soak.db'}",
                pki=pki,
            )
            agents = Agents(work, broker.current.agent_address, pki)
            for site in SITES:
                agents.start(site)
            if not _all_back(broker.current, 0, 60.0):
                raise RuntimeError("the three agents did not become active within 60 s")
            rec = Recorder(bucket_s)
            baseline = broker.sample()
            deadline = rec.started + seconds
            tag = f"s{int(time.time()) % 100000}"
            first = broker.current
            threads.append(threading.Thread(target=_watcher, args=(first, watch_box, rec, closing)))
            for n in range(SUBMITTERS):
                who = "alice" if n % 2 == 0 else "bob"
                args = (first, who, n, SUBMIT_RATE / SUBMITTERS, deadline, stop, spec, rec, tag)
                threads.append(threading.Thread(target=_submitter, args=args))
            threads.append(threading.Thread(target=_canceller, args=(first, deadline, stop, rec)))
            for t in threads:
                t.daemon = True
                t.start()

            def sample(into: Bucket | None = None) -> None:
                assert broker is not None
                reading = broker.sample()
                if reading is None:
                    reasons.append("broker process vanished")
                    return
                if into is not None:
                    into.rss_kb, into.fds, into.threads = reading

            schedule = _Schedule(rec.started, seconds, broker_restarts)
            next_sample = rec.started
            last_bucket = -1
            while (now := time.monotonic()) < deadline:
                if broker.current.proc.poll() is not None:
                    raise RuntimeError(f"broker exited with {broker.current.proc.returncode}")
                index = int((now - rec.started) // bucket_s)
                if index != last_bucket:
                    if last_bucket >= 0:
                        sample(rec.buckets[last_bucket])
                    last_bucket = index
                if now >= next_sample:
                    sample()
                    next_sample += SAMPLE_EVERY_S
                sig = schedule.broker_due(now)
                if sig is not None:
                    entry = _restart_broker(broker, sig, now - rec.started)
                    restarts.append(entry)
                    if entry["all_agents_back_s"] is None:
                        reasons.append(f"agents not all back {AGENTS_BACK_S:g} s after {sig.name}")
                    next_sample = time.monotonic()
                due = schedule.agent_due(time.monotonic())
                if due is not None and deadline - time.monotonic() > 5.0:
                    entry = _restart_agent(
                        agents, broker.current, due, time.monotonic() - rec.started
                    )
                    agent_restarts.append(entry)
                    if entry["active_again_s"] is None:
                        reasons.append(f"agent {due} not active again 30 s after its restart")
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            sample(rec.buckets[last_bucket])
            stop.set()
            for t in threads[1:]:
                t.join(timeout=30)
            with rec.lock:
                rec.draining = True
                acked = dict(rec.acked)
                unacked = list(rec.unacked)
            drain_s, jobs = _drain(broker.current, acked, rec, drain_timeout_s, reasons)
            sample(rec.drain)
            report = _check(acked, unacked, jobs, job_starts(marker), rec, reasons)
            broker.stop()
            processes = broker.verdicts(bounds)
            for verdict in processes:
                for problem in verdict["problems"]:  # type: ignore[attr-defined]
                    reasons.append(f"broker process {verdict['process']}: {problem}")
            for entry in restarts:
                if entry["signal"] == "SIGTERM" and entry["exit_code"] != 0:
                    reasons.append(f"the broker exited {entry['exit_code']} on SIGTERM, not 0")
            return {
                "ok": not reasons,
                "reasons": reasons,
                "load_seconds": seconds,
                "bucket_seconds": bucket_s,
                "submit_rate_per_s": SUBMIT_RATE,
                "submitters": SUBMITTERS,
                "sites": list(SITES),
                "cards_per_site": CARDS_PER_SITE,
                "agent_restarts": agent_restarts,
                "broker_restarts": restarts,
                "drain_seconds": round(drain_s, 1),
                "series": [rec.buckets[i].as_dict(i) for i in sorted(rec.buckets)],
                "drain": rec.drain.as_dict("drain"),
                "bounds": bounds.describe(),
                "broker": {
                    "rss_mb_before_load": round((baseline or (0, 0, 0))[0] / 1024, 1),
                    "fds_before_load": (baseline or (0, 0, 0))[1],
                    "processes": processes,
                },
                "totals": report,
            }
        finally:
            stop.set()
            closing.set()
            for client in watch_box:
                client.close()
            if agents is not None:
                agents.stop_all()
            if broker is not None:
                broker.stop()
            for t in threads:
                t.join(timeout=5)


def _drain(
    broker: ClientSource,
    acked: dict[str, str],
    rec: Recorder,
    timeout_s: float,
    reasons: list[str],
) -> tuple[float, list[Any]]:
    """Wait for every acknowledged job to be final; returns the wait and the final job list."""
    started = time.monotonic()
    with broker.client("operator", timeout_s=30.0) as ops:
        jobs: list[Any] = []

        def drained() -> bool:
            nonlocal jobs
            jobs = _all_jobs(ops)
            states = {j.job_id: j.state for j in jobs}
            return all(states.get(i) in FINAL_STATES for i in acked)

        finished = _wait(drained, timeout_s, every_s=1.0)
        drain_s = time.monotonic() - started
        if not finished:
            reasons.append(f"jobs not final {timeout_s:g} s after the load stopped")
        _wait(lambda: all(i in rec.final_events for i in acked), 15.0)
        time.sleep(1.0)  # let late duplicate starts, if any, reach the marker file
        return drain_s, _all_jobs(ops)


def _check(
    acked: dict[str, str],
    unacked: list[str],
    jobs: list[Any],
    starts: list[tuple[str, int, str]],
    rec: Recorder,
    reasons: list[str],
) -> dict[str, object]:
    """Invariants after the drain; appends a reason for each one that does not hold."""
    listed = Counter(j.job_id for j in jobs)
    by_id = {j.job_id: j for j in jobs}
    missing = [i for i in acked if listed[i] == 0]
    repeated = [i for i, c in listed.items() if c > 1]
    not_final = [i for i in acked if i in by_id and by_id[i].state not in FINAL_STATES]
    unacked_ids = set(unacked)
    extra = [j for j in jobs if j.job_id not in acked]
    strangers = [j.job_id for j in extra if j.request_id not in unacked_ids]
    per_job = Counter(job for job, _, _ in starts)
    per_attempt = Counter((job, attempt) for job, attempt, _ in starts)
    twice = sorted(i for i, c in per_job.items() if c > 1)
    attempt_twice = sorted(f"{j}#{a}" for (j, a), c in per_attempt.items() if c > 1)
    succeeded_unstarted = [
        i for i in acked if i in by_id and by_id[i].state == JobState.SUCCEEDED and not per_job[i]
    ]
    unknown_starts = sorted(set(per_job) - set(listed))
    finals_seen = {i: states for i, states in rec.final_events.items() if i in acked}
    unwatched = [i for i in acked if i not in finals_seen]
    watched_twice = [i for i, states in finals_seen.items() if len(states) > 1]
    checks = [
        (missing, "acknowledged jobs missing from the broker"),
        (repeated, "jobs listed more than once"),
        (not_final, "acknowledged jobs not final after the drain"),
        (strangers, "jobs that no submission asked for"),
        (twice, "jobs that started more than once"),
        (attempt_twice, "attempts that started more than once"),
        (succeeded_unstarted, "succeeded jobs that never started"),
        (unknown_starts, "started jobs unknown to the broker"),
        (unwatched, "acknowledged jobs whose final event the watcher never saw"),
        (watched_twice, "jobs with more than one final event"),
        (rec.after_final, "events after a job's final event"),
    ]
    for items, what in checks:
        if items:
            reasons.append(f"{len(items)} {what}: {list(items)[:5]}")
    final_states = Counter(by_id[i].state.value for i in acked if i in by_id)
    return {
        "submissions_acked": len(acked),
        "submissions_failed": len(unacked),
        "failed_but_created": len(extra) - len(strangers),
        "jobs_listed": len(jobs),
        "final_by_state": dict(final_states),
        "starts": len(starts),
        "jobs_with_attempt_gt_1": sum(1 for i in acked if i in by_id and by_id[i].attempt > 1),
        "watch_events": rec.events,
        "watch_resumed_after": dict(rec.watch_breaks),
    }


def run(smoke: bool) -> dict[str, object]:
    """A 40-second version of the soak: both broker restarts, agent restarts, 10-second buckets.

    Too short for the growth bounds (each broker process is reported as not judged).
    """
    return soak_run(
        SHORT_SECONDS, bucket_s=10.0, drain_timeout_s=60.0, broker_restarts=SHORT_BROKER_RESTARTS
    )


def soak(minutes: float) -> dict[str, object]:
    """The soak proper: `minutes` of load in one-minute buckets, then drain and check."""
    return soak_run(minutes * 60.0, bucket_s=60.0)

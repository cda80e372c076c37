"""Bounded HA soak: two broker replicas on PostgreSQL, three real agents and the soak's mixed load,
with the leader SIGKILLed a few times mid-run; the soak's invariants must hold across failovers,
and every capacity hold of a final job must be released.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench.bench_soak import (
    SITES,
    SUBMITTERS,
    Recorder,
    _all_back,
    _canceller,
    _check,
    _drain,
    _job_spec,
    _submitter,
    _terminate_as_exit,
    _watcher,
)
from bench.ha_cluster import Database, Replicas, postgres_database
from bench.soak_agents import CARDS_PER_SITE, Agents, job_starts
from computenet import Client

REPLICAS = 2
SUBMIT_RATE = 10.0
"""Jobs per second over all submitters: half the single-broker soak's. On a small shared machine
two replicas, PostgreSQL and three agents finish about 9-12 jobs/s, and a growing backlog would
only lengthen the drain; what this soak tests is the invariants across failovers."""
KILLS_AT = (0.2, 0.45, 0.7)
"""Fractions of the load time at which the leader is SIGKILLed."""
SHORT_KILLS_AT = (0.3,)
SHORT_SECONDS = 20.0
FULL_SHARE = 0.3
"""Of `make soak`'s minutes, the share the HA variant's load runs (at most MAX_MINUTES)."""
MAX_MINUTES = 3.0
FAILOVER_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 180.0
"""Longer than the single-broker soak's: each failover leaves about 6 s of submissions queued."""


def _failover(replicas: Replicas, db: Database, at_s: float, reasons: list[str]) -> dict:
    """SIGKILL the leader, wait for the new leader's first dispatch, restart the killed one."""
    with replicas.client(timeout_s=2.0) as client:
        leader = replicas.leader(client)
        if leader is None:
            reasons.append(f"no leader at {at_s:.0f} s, nothing to kill")
            return {"at_s": round(at_s, 1), "killed": None}
        victim = replicas.by_id(leader.broker_id)
        kill_ms = replicas.kill(victim)
        deadline = time.monotonic() + FAILOVER_TIMEOUT_S
        dispatched = None
        while dispatched is None and time.monotonic() < deadline:
            dispatched = db.first_event_after("dispatched", kill_ms)
            if dispatched is None:
                time.sleep(0.1)
        new = replicas.leader(client, not_id=victim.broker_id)
    if dispatched is None:
        reasons.append(f"no dispatch within {FAILOVER_TIMEOUT_S:g} s of the kill at {at_s:.0f} s")
    role = replicas.start(victim)
    return {
        "at_s": round(at_s, 1),
        "killed": victim.broker_id,
        "new_leader": new.broker_id if new is not None else None,
        "epoch": new.epoch if new is not None else None,
        "elected_s": round((new.since_unix_ms - kill_ms) / 1000, 3) if new is not None else None,
        "first_dispatch_s": round((dispatched - kill_ms) / 1000, 3) if dispatched else None,
        "restarted_as": role,
    }


def _holds_released(db: Database, reasons: list[str]) -> int:
    held = db.holds_of_final_jobs()
    if held:
        reasons.append(f"{len(held)} holds of final jobs not released: {held[:5]}")
    return len(held)


def soak_ha_run(seconds: float, bucket_s: float, kills_at: tuple[float, ...]) -> dict:
    """Run the HA soak for `seconds` of load, drain, check invariants; the report."""
    with (
        tempfile.TemporaryDirectory(prefix="computenet-soak-ha-") as tmp,
        postgres_database("soak_ha") as (url, skipped),
        _terminate_as_exit(),
    ):
        if not url:
            return {"skipped": skipped}
        work = Path(tmp)
        marker = work / "starts.txt"
        spec = _job_spec(marker)
        reasons: list[str] = []
        failovers: list[dict[str, object]] = []
        stop, closing = threading.Event(), threading.Event()
        threads: list[threading.Thread] = []
        watch_box: list[Client] = []
        replicas = Replicas(work, url, REPLICAS, "--rebalance-every", "0", "--log-level", "INFO")
        agents = Agents(work, ",".join(replicas.addresses), None)
        db = Database(url)
        try:
            replicas.start_all()
            for site in SITES:
                agents.start(site)
            if not _all_back(replicas, 0, 60.0):
                raise RuntimeError("the three agents did not become active within 60 s")
            rec = Recorder(bucket_s)
            deadline = rec.started + seconds
            tag = f"ha{int(time.time()) % 100000}"
            threads.append(
                threading.Thread(target=_watcher, args=(replicas, watch_box, rec, closing))
            )
            for n in range(SUBMITTERS):
                who = "alice" if n % 2 == 0 else "bob"
                args = (replicas, who, n, SUBMIT_RATE / SUBMITTERS, deadline, stop, spec, rec, tag)
                threads.append(threading.Thread(target=_submitter, args=args))
            threads.append(
                threading.Thread(target=_canceller, args=(replicas, deadline, stop, rec))
            )
            for t in threads:
                t.daemon = True
                t.start()
            kills = sorted(rec.started + f * seconds for f in kills_at)
            while (now := time.monotonic()) < deadline:
                if kills and now >= kills[0]:
                    kills.pop(0)
                    failovers.append(_failover(replicas, db, now - rec.started, reasons))
                for r in replicas.replicas:
                    if r.proc is not None and r.proc.poll() is not None:
                        raise RuntimeError(f"replica {r.broker_id} exited with {r.proc.returncode}")
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            stop.set()
            for t in threads[1:]:
                t.join(timeout=30)
            with rec.lock:
                rec.draining = True
                acked = dict(rec.acked)
                unacked = list(rec.unacked)
            drain_s, jobs = _drain(replicas, acked, rec, DRAIN_TIMEOUT_S, reasons)
            report = _check(acked, unacked, jobs, job_starts(marker), rec, reasons)
            held = _holds_released(db, reasons)
            return {
                "ok": not reasons,
                "reasons": reasons,
                "replicas": REPLICAS,
                "leader_lease_s": replicas.lease_s,
                "load_seconds": seconds,
                "bucket_seconds": bucket_s,
                "submit_rate_per_s": SUBMIT_RATE,
                "sites": list(SITES),
                "cards_per_site": CARDS_PER_SITE,
                "failovers": failovers,
                "drain_seconds": round(drain_s, 1),
                "series": [rec.buckets[i].as_dict(i) for i in sorted(rec.buckets)],
                "drain": rec.drain.as_dict("drain"),
                "holds_of_final_jobs": held,
                "totals": report,
            }
        finally:
            stop.set()
            closing.set()
            for client in watch_box:
                client.close()
            agents.stop_all()
            replicas.stop_all()
            db.close()
            for t in threads:
                t.join(timeout=5)


def run(smoke: bool) -> dict[str, object]:
    """A 20-second version: one leader kill, 10-second buckets (also what `make bench` runs)."""
    return soak_ha_run(SHORT_SECONDS, bucket_s=10.0, kills_at=SHORT_KILLS_AT)


def soak(minutes: float) -> dict[str, object]:
    """The HA soak proper: a share of `make soak`'s minutes (at most 3) with three leader kills."""
    load_minutes = min(MAX_MINUTES, minutes * FULL_SHARE)
    return soak_ha_run(load_minutes * 60.0, bucket_s=60.0, kills_at=KILLS_AT)

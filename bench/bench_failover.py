"""Failover benchmark: three broker replicas on PostgreSQL, three real agents, a steady trickle of
jobs; the leader is SIGKILLed again and again, and each time the seconds until the new leader's
first dispatch are measured, split into election, agents back and first placement.

How each time is observed is in docs/benchmarks.md ("Failover").
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.failover_figures import KillRecord, summarize
from bench.ha_cluster import Database, Replicas, agent_connections, postgres_database
from bench.soak_agents import Agents, kill_job_processes
from computenet import Client
from computenet.types import SiteStatus

SITES = ("horinger", "zhangjiakou", "yangtze-demo")
REPLICAS = 3
SUBMIT_RATE = 4.0
"""Jobs per second: enough that a job is always pending when a new leader starts."""
FULL_KILLS = 6
SMOKE_KILLS = 1
OBSERVE_TIMEOUT_S = 60.0
AGENTS_TIMEOUT_S = 30.0
SETTLE_S = (2.0, 4.0)
"""Random pause before each kill, so kills fall at any point of the leader's renewal cycle."""
POLL_S = 0.05

SPEC: dict[str, Any] = {
    "name": "failover",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1, "cpu": 1, "memory_gb": 1},
    "duration_hours": 0.01,
    "command": ["sleep", "0.5"],
}


@dataclass
class Trickle:
    """A thread submitting SPEC at a steady rate through every replica's address."""

    replicas: Replicas
    rate: float
    stop: threading.Event = field(default_factory=threading.Event)
    acked: int = 0
    failed: int = 0

    def run(self) -> None:
        period = 1.0 / self.rate
        with self.replicas.client(timeout_s=10.0) as client:
            k = 0
            while not self.stop.wait(period):
                k += 1
                try:
                    client.submit(SPEC, request_id=f"failover-{k}")
                    self.acked += 1
                except Exception:  # counted: submissions during a failover may time out
                    self.failed += 1


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(POLL_S * 4)
    return False


def _all_active(client: Client) -> bool:
    try:
        sites = {str(s.site_id): s.status for s in client.sites()}
    except Exception:  # a replica on its way up or down
        return False
    return all(sites.get(s) == SiteStatus.ACTIVE for s in SITES)


def _steady(replicas: Replicas, db: Database, client: Client) -> bool:
    """Every replica up, a leader known, every site active and dispatches flowing."""
    if any(r.proc is None for r in replicas.replicas):
        return False
    if replicas.leader(client) is None or not _all_active(client):
        return False
    return db.first_event_after("dispatched", int(time.time() * 1000) - 3000) is not None


def _one_kill(
    replicas: Replicas, db: Database, agents: Agents, client: Client, rng: random.Random
) -> KillRecord:
    if not _wait(lambda: _steady(replicas, db, client), 60.0):
        raise RuntimeError("the cluster did not reach a steady state within 60 s")
    time.sleep(rng.uniform(*SETTLE_S))
    leader = replicas.leader(client)
    if leader is None:
        raise RuntimeError("no leader just before the kill")
    victim = replicas.by_id(leader.broker_id)
    kill_ms = replicas.kill(victim)
    new_leader = None
    placed = dispatched = None
    deadline = time.monotonic() + OBSERVE_TIMEOUT_S
    while time.monotonic() < deadline and dispatched is None:
        if new_leader is None:
            new_leader = replicas.leader(client, not_id=victim.broker_id)
        if placed is None:
            placed = db.first_event_after("placed", kill_ms)
        dispatched = db.first_event_after("dispatched", kill_ms)
        if dispatched is None:
            time.sleep(POLL_S)
    if new_leader is None:
        new_leader = replicas.leader(client, not_id=victim.broker_id)
    if placed is None:
        placed = db.first_event_after("placed", kill_ms)
    epoch = new_leader.epoch if new_leader is not None else 0
    back = _agents_back(agents, kill_ms, epoch)
    replicas.start(victim)
    return KillRecord(
        killed=victim.broker_id,
        new_leader=new_leader.broker_id if new_leader is not None else "",
        epoch=epoch,
        kill_ms=kill_ms,
        elected_ms=new_leader.since_unix_ms if new_leader is not None else None,
        agents_back_ms=back,
        first_placed_ms=placed,
        first_dispatched_ms=dispatched,
    )


def _agents_back(agents: Agents, kill_ms: int, epoch: int) -> tuple[int | None, ...]:
    """Per agent, its first welcome from the leader of `epoch` after the kill (from its log)."""

    def first(site: str) -> int | None:
        log = agents.folder(site) / "agent.log"
        times = [t for t, _, e in agent_connections(log) if e == epoch and t >= kill_ms - 1000]
        return min(times) if times else None

    _wait(lambda: all(first(s) is not None for s in SITES), AGENTS_TIMEOUT_S)
    return tuple(first(s) for s in SITES)


def measure(kills: int, seed: int = 14) -> dict[str, object]:
    """Run the cluster, kill its leader `kills` times; per-kill records and their summary."""
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp,
        postgres_database("bench_failover") as (url, skipped),
    ):
        if not url:
            return {"skipped": skipped}
        work = Path(tmp)
        replicas = Replicas(work, url, REPLICAS, "--rebalance-every", "0", "--log-level", "INFO")
        agents = Agents(work, ",".join(replicas.addresses), None, log_level="INFO")
        db = Database(url)
        trickle = Trickle(replicas, SUBMIT_RATE)
        thread = threading.Thread(target=trickle.run, daemon=True)
        records: list[KillRecord] = []
        try:
            replicas.start_all()
            for site in SITES:
                agents.start(site)
            thread.start()
            with replicas.client(timeout_s=2.0) as client:
                for _ in range(kills):
                    records.append(_one_kill(replicas, db, agents, client, rng))
        finally:
            trickle.stop.set()
            thread.join(timeout=30)
            agents.stop_all()
            replicas.stop_all()
            db.close()
            for site in SITES:
                kill_job_processes(agents.folder(site) / "state")
    summary = summarize(records)
    return {
        # a kill with no dispatch within the observation window is a failure; a slow one is not
        "ok": summary["failovers_not_seen"] == 0,
        "reasons": [] if summary["failovers_not_seen"] == 0 else ["a failover never dispatched"],
        "replicas": REPLICAS,
        "agents": len(SITES),
        "leader_lease_s": replicas.lease_s,
        "submit_rate_per_s": SUBMIT_RATE,
        "submissions_acked": trickle.acked,
        "submissions_failed": trickle.failed,
        **summary,
        "per_kill": [r.as_dict() for r in records],
    }


def run(smoke: bool) -> dict[str, object]:
    """The benchmark proper kills the leader FULL_KILLS times; the smoke run once."""
    return measure(SMOKE_KILLS if smoke else FULL_KILLS)

"""A chaos federation: a real broker on the host and real agents, each in its own namespace.

The broker serves clients on loopback and agents (mTLS) on the bridge address; each agent runs
in its own network namespace behind a veth pair, directly or through a fault proxy. Jobs are
the stamp job, so the checks read from the stamp files when every attempt really ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from broker.config.sections import LivenessConfig
from computenet import Client
from computenet.types import Job, JobState, SiteStatus
from tests.chaos.stamps import find_overlaps, launched_twice, read_runs, unended
from tests.harness.fault_proxy import FaultProxy
from tests.harness.netns import Bridge, Node, popen_in
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_broker
from tests.support.waiting import wait_for

STAMP_JOB = Path(__file__).with_name("stamp_job.py")
SKEWED_AGENT = Path(__file__).parent.parent / "harness" / "skewed_agent.py"
SITES = ("horinger", "zhangjiakou", "yangtze-demo")
POOL_CARDS = 4

LIVENESS: dict[str, float] = {
    "suspect_after_s": 2.0,
    "lost_after_s": 6.0,
    "heartbeat_interval_s": 0.5,
    "lease_s": 4.0,
}
SKEW_MARGIN_S = 1.0
"""lost_after_s >= lease_s + clock_skew_margin_s, where the broker has that setting."""

WAIT_S = 90.0
"""Bound on any one wait: generous, since seven workers may share two cores."""


def broker_liveness() -> dict[str, float]:
    """The liveness section: short windows, with the skew margin where the broker knows it."""
    section = dict(LIVENESS)
    if "clock_skew_margin_s" in LivenessConfig.model_fields:
        section["clock_skew_margin_s"] = SKEW_MARGIN_S
    return section


@dataclass
class Agent:
    """One site agent: its namespace, config, process and how it dials the broker."""

    site: str
    node: Node
    config: Path
    proc: subprocess.Popen[str] | None = None
    skew_file: Path | None = None


@dataclass
class Federation:
    """The broker, its agents and the jobs submitted in one chaos scenario."""

    workdir: Path
    bridge: Bridge
    pki: Pki
    broker: BrokerProcess | None = None
    agents: dict[str, Agent] = field(default_factory=dict)
    proxy: FaultProxy | None = None
    acknowledged: list[str] = field(default_factory=list)
    """Job ids whose submission the broker acknowledged."""

    @property
    def stamps(self) -> Path:
        """Where the jobs write their stamps."""
        return self.workdir / "stamps"

    @property
    def db_url(self) -> str:
        """The broker's database (kept across broker restarts)."""
        return f"sqlite:///{self.workdir / 'broker.db'}"

    # --- broker -----------------------------------------------------------------------------

    def start_broker(self) -> BrokerProcess:
        """Start the broker (again on the same ports and database if it ran before)."""
        config = self.workdir / "broker.yaml"
        config.write_text(yaml.safe_dump({"liveness": broker_liveness()}))
        old = self.broker
        self.broker = start_broker(
            self.workdir,
            "--config",
            str(config),
            db_url=self.db_url,
            listen=old.address if old else "127.0.0.1:0",
            agent_listen=old.agent_address if old else f"{self.bridge.address}:0",
            pki=self.pki,
        )
        return self.broker

    def kill_broker(self) -> None:
        """SIGKILL the broker and reap it."""
        assert self.broker is not None
        self.broker.proc.kill()
        self.broker.proc.wait(timeout=30)

    def client(self) -> Client:
        """An operator client of the broker."""
        assert self.broker is not None
        return self.broker.client(timeout_s=10)

    def proxied(self) -> FaultProxy:
        """A fault proxy on the bridge in front of the broker's agent port (made once)."""
        if self.proxy is None:
            assert self.broker is not None
            port = int(self.broker.agent_address.rsplit(":", 1)[1])
            self.proxy = FaultProxy(self.bridge.address, self.bridge.address, port).start()
        return self.proxy

    # --- agents -----------------------------------------------------------------------------

    def add_agent(
        self, site: str, *, via_proxy: bool = False, skew_s: float | None = None
    ) -> Agent:
        """Configure an agent for `site` in a new namespace and start it."""
        assert self.broker is not None
        node = self.bridge.add_node(site)
        folder = self.workdir / f"agent-{site}"
        folder.mkdir(parents=True, exist_ok=True)
        target = self.proxied().address if via_proxy else self.broker.agent_address
        config = {
            "site": site,
            "broker": target,
            "capacity": {
                "source": "static",
                "pools": [{"model": "a800", "count": POOL_CARDS}],
                "cpu_cores": 16,
                "memory_gb": 64,
            },
            "executor": {"kind": "local", "poll_interval_s": 0.2, "cancel_grace_s": 10},
            "state_dir": str(folder / "state"),
            "heartbeat_interval_s": LIVENESS["heartbeat_interval_s"],
            "lease_s": LIVENESS["lease_s"],
            # the broker certificate names localhost; the agent dials the bridge address
            "tls": {**self.pki.site_tls(site), "server_name": "localhost"},
        }
        path = folder / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        agent = Agent(site, node, path)
        if skew_s is not None:
            agent.skew_file = folder / "clock-offset-s"
            agent.skew_file.write_text(f"{skew_s}\n")
        self.agents[site] = agent
        self.start_agent(site)
        return agent

    def start_agent(self, site: str) -> None:
        """(Re)start a configured agent in its namespace."""
        agent = self.agents[site]
        run = ["run", "--config", str(agent.config)]
        if agent.skew_file is not None:
            argv = [sys.executable, str(SKEWED_AGENT), str(agent.skew_file), *run]
        else:
            argv = [sys.executable, "-m", "site_agent", *run]
        log = open(agent.config.parent / "agent.log", "a")  # noqa: SIM115 - closed with the process
        agent.proc = popen_in(
            agent.node,
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=agent.config.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def signal_agent(self, site: str, sig: signal.Signals) -> None:
        """Send `sig` to a site's agent process (not to its jobs)."""
        proc = self.agents[site].proc
        assert proc is not None
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            proc.wait(timeout=30)

    def set_skew(self, site: str, skew_s: float) -> None:
        """Step a skewed agent's wall clock to `skew_s` from the host's."""
        skew_file = self.agents[site].skew_file
        assert skew_file is not None
        skew_file.write_text(f"{skew_s}\n")

    def wait_active(self, sites: tuple[str, ...] | list[str]) -> None:
        """Until every named site is active."""
        with self.client() as client:
            wait_for(
                lambda: {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)} >= set(sites),
                timeout_s=WAIT_S,
                what=f"sites {sorted(sites)} active",
            )

    def wait_status(self, site: str, status: SiteStatus) -> None:
        """Until the broker sees `site` in `status`."""
        with self.client() as client:
            wait_for(
                lambda: client.site(site).status == status,
                timeout_s=WAIT_S,
                what=f"{site} {status.value}",
            )

    # --- jobs -------------------------------------------------------------------------------

    def job_spec(self, name: str, seconds: float) -> dict[str, Any]:
        """A one-card batch job that stamps its run for `seconds`."""
        command = [sys.executable, "-I", str(STAMP_JOB), str(self.stamps), str(seconds)]
        return {
            "name": name,
            "kind": "batch",
            "resources": {"accelerator": "a800", "count": 1, "cpu": 1, "memory_gb": 1},
            "duration_hours": 0.01,
            "command": command,
        }

    def submit(self, name: str, seconds: float) -> str:
        """Submit a stamp job; its id counts as acknowledged once the broker answers."""
        with self.client() as client:
            job = client.submit(self.job_spec(name, seconds), request_id=name).job
        self.acknowledged.append(job.job_id)
        return job.job_id

    def wait_running(self, job_id: str, *, attempt: int = 1) -> Job:
        """Until the job runs its `attempt` or a later one (as the broker sees it)."""

        def running() -> Job | None:
            job = client.get(job_id)
            return job if job.state == JobState.RUNNING and job.attempt >= attempt else None

        with self.client() as client:
            found = wait_for(running, timeout_s=WAIT_S, what=f"{job_id} running")
        assert found is not None  # wait_for returns only a truthy value
        return found

    def started(self, job_id: str, attempt: int) -> bool:
        """Whether a stamp file shows the attempt started."""
        return any(r.job == job_id and r.attempt == attempt for r in read_runs(self.stamps))

    # --- the outside checks -----------------------------------------------------------------

    def settle_and_check(self) -> list[Job]:
        """Wait until every job is final and every hold released, then check the stamps.

        No acknowledged job lost (the broker knows each and each is final or pending with a
        reason); no two attempts of one job overlap; no attempt launched twice or left running;
        capacity holds back to zero. Returns the jobs as the broker ends them.
        """
        assert self.broker is not None
        with self.client() as client:
            try:
                jobs: list[Job] = wait_for(
                    lambda: _all_final(client, self.acknowledged),
                    timeout_s=WAIT_S * 2,
                    what="every acknowledged job final",
                )
            except AssertionError as exc:
                states = [(j.job_id, j.state.value, j.reason) for j in _jobs(client, self)]
                raise AssertionError(f"{exc}; jobs: {states}") from None
            wait_for(
                lambda: all(p.held == 0 for s in client.sites() for p in s.pools),
                timeout_s=WAIT_S,
                what="capacity holds back to zero",
            )
        wait_for(
            lambda: not unended(read_runs(self.stamps)),
            timeout_s=WAIT_S,
            what="every attempt ended",
        )
        runs = read_runs(self.stamps)
        problems = [f"overlap: {o.describe()}" for o in find_overlaps(runs)]
        problems += [f"launched twice: {r.describe()}" for r in launched_twice(runs)]
        for job in jobs:
            if job.state == JobState.SUCCEEDED:
                final = [r for r in runs if r.job == job.job_id and r.attempt == job.attempt]
                if not any(r.site == job.site and r.ended_by == "end" for r in final):
                    problems.append(f"{job.job_id} succeeded without a completed run: {final}")
        assert not problems, "\n".join(problems)
        return jobs

    def close(self) -> None:
        """Stop agents, the proxy and the broker; kill stray jobs of this federation."""
        for agent in self.agents.values():
            if agent.proc is not None and agent.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    agent.proc.send_signal(signal.SIGCONT)
                agent.proc.kill()
                agent.proc.wait(timeout=30)
        if self.proxy is not None:
            self.proxy.stop()
        if self.broker is not None and self.broker.proc.poll() is None:
            self.broker.proc.kill()
            self.broker.proc.wait(timeout=30)
        kill_jobs_under(self.workdir)


def _jobs(client: Client, federation: Federation) -> list[Job]:
    return [client.get(job_id) for job_id in federation.acknowledged]


def _all_final(client: Client, job_ids: list[str]) -> list[Job]:
    # a lost job raises NotFound here, failing the scenario
    jobs = [client.get(job_id) for job_id in job_ids]
    return jobs if all(j.state.is_final for j in jobs) else []


def kill_jobs_under(workdir: Path) -> None:
    """SIGKILL job processes (wrappers and stamp jobs) whose command line names `workdir`."""
    marker = str(workdir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in argv:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)

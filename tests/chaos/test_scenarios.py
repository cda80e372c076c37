"""Chaos scenarios: real broker and agents, faults from outside, checks from the jobs' stamps.

Each scenario ends with `Federation.settle_and_check`: no acknowledged job lost, no two
attempts of one job overlapping in time, no attempt launched twice or left running, capacity
holds back to zero. Liveness windows are short (suspect 2 s, lost 6 s, lease 4 s, heartbeat
0.5 s), so a partition "longer than the lost window" lasts seconds.
"""

from __future__ import annotations

import logging
import signal

import pytest

from computenet.types import JobState, SiteStatus
from tests.chaos.federation import SITES, Federation
from tests.harness.fault_proxy import Direction, Faults
from tests.harness.netns import add_netem, netem_available
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.timeout(600)]

LONG_JOB_S = 15.0
"""Longer than suspect + lost + re-placement, so a copy left running would overlap its successor."""


def start_agents(fed: Federation, *, via_proxy: bool = False) -> None:
    for site in SITES:
        fed.add_agent(site, via_proxy=via_proxy)
    fed.wait_active(SITES)


def wait_replaced(fed: Federation, job_id: str, old_site: str) -> None:
    """Until the job runs a later attempt somewhere else (the broker re-placed it)."""
    running = fed.wait_running(job_id, attempt=2)
    assert running.site != old_site, f"re-placed on the lost site {old_site}"
    wait_for(lambda: fed.started(job_id, running.attempt), what="the new attempt's start stamp")


def test_partition_longer_than_the_lost_window(federation: Federation, chaos_round: int) -> None:
    """Full partition (the host side of the agent's veth goes down) past the lost window.

    The broker declares the site lost and re-places its job; the old attempt must have
    stopped (the agent's lease expired without renewal) before the new one starts.
    """
    fed = federation
    start_agents(fed)
    job_id = fed.submit(f"partition-{chaos_round}", LONG_JOB_S)
    site = fed.wait_running(job_id).site
    assert site is not None
    wait_for(lambda: fed.started(job_id, 1), what="the first attempt's start stamp")
    fed.bridge.partition(site)
    fed.wait_status(site, SiteStatus.LOST)
    wait_replaced(fed, job_id, site)
    fed.bridge.heal(site)
    jobs = fed.settle_and_check()
    assert jobs[0].state == JobState.SUCCEEDED and jobs[0].attempt >= 2


def test_latency_and_loss(
    federation: Federation, chaos_round: int, request: pytest.FixtureRequest
) -> None:
    """Slow, lossy links between every agent and the broker.

    With netem in the kernel: `delay 100ms 30ms loss 5%` on both ends of each veth. Without it
    (this kind of VM): the fault proxy delays every chunk 100 ms (+ up to 30 ms) and stalls 5%
    of chunks for 0.6 s, as a lost segment's retransmission would. Jobs still run exactly once.
    """
    fed = federation
    use_netem = netem_available()
    request.node.user_properties.append(("link_faults", "netem" if use_netem else "fault proxy"))
    log.info("latency and loss by %s", "netem" if use_netem else "the fault proxy")
    start_agents(fed, via_proxy=not use_netem)
    if use_netem:
        for agent in fed.agents.values():
            add_netem(agent.node, "delay", "100ms", "30ms", "loss", "5%")
    else:
        fed.proxied().faults = Faults(delay_s=0.1, jitter_s=0.03, stall_chance=0.05, stall_s=0.6)
    for k in range(6):
        fed.submit(f"slow-{chaos_round}-{k}", 2.0)
    jobs = fed.settle_and_check()
    assert all(j.state == JobState.SUCCEEDED for j in jobs)
    if not use_netem:
        stats = fed.proxied().stats
        assert stats.stalls > 0 and stats.forwarded[Direction.DOWN] > 0


def test_dropped_acknowledgements(federation: Federation, chaos_round: int) -> None:
    """Messages lost after the sender believed them delivered, then the connection reset.

    Through the fault proxy: (1) everything the agents send is discarded from before a job's
    dispatch until its attempt has started, so the broker never sees the agent's ack of the
    dispatch nor its `running` report; (2) everything the broker sends is discarded from a
    job's start until the broker has recorded its end, so the agent never sees the broker's ack
    of its final report. Each time every connection is then reset; the agents reconnect and
    resend what was not acknowledged, and nothing may be applied twice.
    """
    fed = federation
    start_agents(fed, via_proxy=True)
    proxy = fed.proxied()

    proxy.blackhole(Direction.UP)
    try:
        dispatched = fed.submit(f"acks-up-{chaos_round}", 3.0)
        wait_for(lambda: fed.started(dispatched, 1), what="the first job's start stamp")
    finally:
        proxy.lift_and_cut(Direction.UP)
    assert proxy.stats.discarded[Direction.UP] > 0, "nothing the agents sent was discarded"

    finishing = fed.submit(f"acks-down-{chaos_round}", 1.0)
    wait_for(lambda: fed.started(finishing, 1), what="the second job's start stamp")
    proxy.blackhole(Direction.DOWN)
    try:
        with fed.client() as client:
            wait_for(lambda: client.get(finishing).state.is_final, what="the second job's end")
    finally:
        proxy.lift_and_cut(Direction.DOWN)
    assert proxy.stats.discarded[Direction.DOWN] > 0, "nothing the broker sent was discarded"

    jobs = fed.settle_and_check()
    assert {j.job_id for j in jobs} == {dispatched, finishing}
    assert all(j.state == JobState.SUCCEEDED and j.attempt == 1 for j in jobs)
    assert proxy.stats.cuts >= 2


def test_broker_sigkill_and_restart(federation: Federation, chaos_round: int) -> None:
    """The broker is SIGKILLed with jobs running and queued, and restarts on the same database."""
    fed = federation
    start_agents(fed)
    ids = [fed.submit(f"restart-{chaos_round}-{k}", 3.0) for k in range(6)]
    fed.wait_running(ids[0])
    fed.kill_broker()
    fed.start_broker()
    jobs = fed.settle_and_check()
    assert all(j.state == JobState.SUCCEEDED for j in jobs)


def test_agent_sigkill_and_restart(federation: Federation, chaos_round: int) -> None:
    """The agent running a job is SIGKILLed and restarts (as a supervisor would) once suspect.

    Its job keeps running meanwhile (jobs run in their own session); the restarted agent adopts
    it from its journal, so the job finishes where it started.
    """
    fed = federation
    start_agents(fed)
    job_id = fed.submit(f"agent-kill-{chaos_round}", 8.0)
    site = fed.wait_running(job_id).site
    assert site is not None
    fed.signal_agent(site, signal.SIGKILL)
    fed.wait_status(site, SiteStatus.SUSPECT)
    fed.start_agent(site)
    jobs = fed.settle_and_check()
    assert jobs[0].state == JobState.SUCCEEDED


def test_agent_sigstop_past_the_lost_window(federation: Federation, chaos_round: int) -> None:
    """The agent running a job is stopped (SIGSTOP) past the lost window, then continued.

    Its job keeps running while the agent is frozen; the broker declares the site lost and
    re-places the job. The old copy must be stopped before the new one starts.
    """
    fed = federation
    start_agents(fed)
    job_id = fed.submit(f"stall-{chaos_round}", LONG_JOB_S)
    site = fed.wait_running(job_id).site
    assert site is not None
    wait_for(lambda: fed.started(job_id, 1), what="the first attempt's start stamp")
    fed.signal_agent(site, signal.SIGSTOP)
    try:
        fed.wait_status(site, SiteStatus.LOST)
        wait_replaced(fed, job_id, site)
    finally:
        fed.signal_agent(site, signal.SIGCONT)
    jobs = fed.settle_and_check()
    assert jobs[0].state == JobState.SUCCEEDED


def test_skewed_clock_stepped_back_during_a_partition(
    federation: Federation, chaos_round: int
) -> None:
    """An agent whose wall clock runs an hour ahead, stepped two hours back while partitioned.

    The skew comes from `tests/harness/skewed_agent.py` (the agent's own `time.time`; its
    monotonic clock and its jobs keep the host's time). The agent starts alone so the job
    lands on it; a lease measured on the wall clock would never expire after the step back.
    """
    fed = federation
    skewed = SITES[0]
    fed.add_agent(skewed, skew_s=3600.0)
    fed.wait_active([skewed])
    job_id = fed.submit(f"skew-{chaos_round}", LONG_JOB_S)
    assert fed.wait_running(job_id).site == skewed
    wait_for(lambda: fed.started(job_id, 1), what="the first attempt's start stamp")
    for site in SITES[1:]:
        fed.add_agent(site)
    fed.wait_active(SITES)
    fed.bridge.partition(skewed)
    fed.set_skew(skewed, -3600.0)
    fed.wait_status(skewed, SiteStatus.LOST)
    wait_replaced(fed, job_id, skewed)
    fed.bridge.heal(skewed)
    jobs = fed.settle_and_check()
    assert jobs[0].state == JobState.SUCCEEDED and jobs[0].attempt >= 2

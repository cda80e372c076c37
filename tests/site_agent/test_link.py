"""The agent against a scripted broker double over a real gRPC stream on loopback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from computenet.types import JobState
from computenet.v1 import site_service_pb2 as sp
from computenet.v1 import types_pb2 as pb
from site_agent.app import run_agent
from site_agent.config import AgentConfig, CapacityConfig, ExecutorConfig, PoolConfig
from site_agent.journal import Journal
from site_agent.link import SiteRejectedError
from tests.site_agent.fake_broker import FakeBroker, start_fake_broker
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for_async

pytestmark = pytest.mark.timeout(120)


def agent_config(state_dir: Path, broker: str, site: str = "zhangjiakou") -> AgentConfig:
    return AgentConfig(
        site=site,
        broker=broker,
        capacity=CapacityConfig(
            source="static", pools=[PoolConfig(model="a800", count=8)], cpu_cores=64, memory_gb=512
        ),
        executor=ExecutorConfig(kind="local", poll_interval_s=0.05, cancel_grace_s=2),
        state_dir=state_dir,
        heartbeat_interval_s=0.2,
        lease_s=30,
    )


def run_with_broker(
    tmp_path: Path, body: Callable[[FakeBroker, AgentConfig, asyncio.Event], Awaitable[None]]
) -> None:
    async def main() -> None:
        server, fake, address = await start_fake_broker()
        cfg = agent_config(tmp_path / "state", address)
        stop = asyncio.Event()
        try:
            await body(fake, cfg, stop)
        finally:
            stop.set()
            await server.stop(None)

    asyncio.run(main())


def attempt_state(state_dir: Path, job_id: str) -> JobState | None:
    """The state the agent last recorded for a job's attempt, read from its own journal."""
    journal = Journal(state_dir)
    try:
        states = [r.reported for r in journal.load().attempts if r.job_id == job_id]
    finally:
        journal.close()
    return states[-1] if states else None


def counting_job(runs: Path, seconds: float = 0.3, code: int = 0) -> list[str]:
    return ["sh", "-c", f"echo run >> {runs}; sleep {seconds}; exit {code}"]


def test_dispatch_ack_reports_and_resume_after_a_dropped_stream(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        agent = asyncio.create_task(run_agent(cfg, stop))
        s1 = await fake.next_session()
        hello = (await s1.next("hello", skip=())).hello
        assert (hello.site_id, hello.executor, list(hello.attempts)) == ("zhangjiakou", "local", [])
        assert not hello.checkpoints, "no checkpoint store: moved jobs restart here"
        assert hello.epoch
        s1.welcome()
        cap = (await s1.next("heartbeat", skip=())).heartbeat.capacity
        assert [(p.model, p.total, p.allocatable, p.in_use) for p in cap.pools] == [
            ("a800", 8, 8, 0)
        ]

        job = make_spec(*counting_job(runs), count=2, accelerator="a800")
        s1.dispatch(11, "j1", 1, 5, job)
        assert (await s1.next("ack")).ack.id == 11
        running = (await s1.next("job_event")).job_event
        assert (running.report_id, running.job_id, running.attempt) == (1, "j1", 1)
        assert (running.state, running.fencing_token) == (pb.JOB_STATE_RUNNING, 5)
        s1.ack(1)
        busy = (await s1.next("heartbeat", skip=())).heartbeat.capacity
        assert busy.pools[0].in_use == 2
        done = (await s1.next("job_event")).job_event
        assert (done.report_id, done.state, done.exit_code) == (2, pb.JOB_STATE_SUCCEEDED, 0)
        s1.drop()

        s2 = await fake.next_session()
        hello = (await s2.next("hello", skip=("capacity", "job_event", "ack"))).hello
        assert [(a.job_id, a.attempt, a.state) for a in hello.attempts] == [
            ("j1", 1, pb.JOB_STATE_SUCCEEDED)
        ]
        assert hello.epoch
        s2.welcome()
        resent = (await s2.next("job_event")).job_event
        assert (resent.report_id, resent.state) == (2, pb.JOB_STATE_SUCCEEDED)
        s2.dispatch(11, "j1", 1, 5, job)  # the same dispatch again
        assert (await s2.next("ack")).ack.id == 11
        s2.ack(2)
        s2.send(drain=sp.Drain(delivery_id=12, drain=True))
        assert (await s2.next("ack")).ack.id == 12
        drained = (await s2.next("heartbeat", skip=())).heartbeat.capacity
        # The agent handles one delivery at a time, launch included, so this report comes after
        # the resent dispatch was handled: had it started the job again, the cards would be held.
        assert (drained.pools[0].allocatable, drained.pools[0].in_use) == (0, 0)
        stop.set()
        await asyncio.wait_for(agent, 20)
        assert runs.read_text() == "run\n"

    run_with_broker(tmp_path, body)


def test_cancel_stops_the_attempt_and_unknown_cancel_is_reported(tmp_path: Path) -> None:
    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        agent = asyncio.create_task(run_agent(cfg, stop))
        s1 = await fake.next_session()
        await s1.next("hello", skip=())
        s1.welcome()
        s1.dispatch(1, "j1", 1, 3, make_spec("sleep", "60"))
        assert (await s1.next("ack")).ack.id == 1
        assert (await s1.next("job_event")).job_event.state == pb.JOB_STATE_RUNNING
        s1.send(cancel=sp.CancelAttempt(delivery_id=2, job_id="j1", attempt=1, reason="by user"))
        assert (await s1.next("ack")).ack.id == 2
        done = (await s1.next("job_event")).job_event
        assert (done.state, done.message, done.fencing_token) == (
            pb.JOB_STATE_CANCELLED,
            "by user",
            3,
        )
        s1.send(cancel=sp.CancelAttempt(delivery_id=3, job_id="zz", attempt=4, reason="cleanup"))
        assert (await s1.next("ack")).ack.id == 3
        unknown = (await s1.next("job_event")).job_event
        assert (unknown.job_id, unknown.attempt, unknown.state) == ("zz", 4, pb.JOB_STATE_CANCELLED)
        stop.set()
        await asyncio.wait_for(agent, 20)

    run_with_broker(tmp_path, body)


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED])
def test_unknown_site_stops_the_agent(tmp_path: Path, code: grpc.StatusCode) -> None:
    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        fake.reject = code
        with pytest.raises(SiteRejectedError, match=f"rejected site 'zhangjiakou': {code.name}"):
            await asyncio.wait_for(run_agent(cfg, stop), 20)

    run_with_broker(tmp_path, body)


def test_cli_run_exits_2_with_one_line_when_the_site_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: zhangjiakou\nbroker: 127.0.0.1:1\n"
        "capacity: {source: static, pools: [{model: a800, count: 8}]}\n"
        "executor: {kind: local}\nstate_dir: ./agent-state\n"
    )

    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        fake.reject = grpc.StatusCode.NOT_FOUND
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "site_agent",
            "run",
            "--config",
            str(config),
            "--site",
            "nowhere",
            "--broker",
            cfg.broker,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2
        lines = [line for line in err.decode().splitlines() if "error:" in line]
        assert lines == [
            f"computenet-agent: error: broker {cfg.broker} rejected site 'nowhere': "
            "NOT_FOUND: site 'nowhere' is not in the topology"
        ]

    run_with_broker(tmp_path, body)


def test_lease_expiry_stops_requeue_attempts_and_reports_after_reconnect(tmp_path: Path) -> None:
    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        agent = asyncio.create_task(run_agent(cfg, stop))
        s1 = await fake.next_session()
        await s1.next("hello", skip=())
        s1.welcome(lease_s=0.5)
        s1.dispatch(1, "j1", 1, 3, make_spec("sleep", "60"))
        s1.dispatch(2, "j2", 1, 4, make_spec("sleep", "30", on_site_loss="fail"))
        assert (await s1.next("ack")).ack.id == 1
        assert (await s1.next("ack", skip=("capacity", "job_event"))).ack.id == 2
        fake.reject = grpc.StatusCode.UNAVAILABLE
        s1.drop()
        await wait_for_async(
            lambda: attempt_state(cfg.state_dir, "j1") is JobState.CANCELLED,
            what="the agent to stop j1 once its lease ran out",
        )
        fake.reject = None
        s2 = await fake.next_session()
        hello = (await s2.next("hello", skip=("capacity", "job_event", "ack"))).hello
        states = {(a.job_id, a.state) for a in hello.attempts}
        assert ("j1", pb.JOB_STATE_CANCELLED) in states
        assert ("j2", pb.JOB_STATE_RUNNING) in states
        s2.welcome()
        reports: list[sp.JobEventReport] = []
        while not any(r.job_id == "j1" and r.state == pb.JOB_STATE_CANCELLED for r in reports):
            reports.append((await s2.next("job_event")).job_event)
        cancelled = [r for r in reports if r.state == pb.JOB_STATE_CANCELLED]
        assert [(r.job_id, r.message) for r in cancelled] == [("j1", "lease expired")]
        s2.send(cancel=sp.CancelAttempt(delivery_id=3, job_id="j2", attempt=1, reason="done"))
        while True:
            event = (await s2.next("job_event", skip=("capacity", "ack"))).job_event
            if (event.job_id, event.state) == ("j2", pb.JOB_STATE_CANCELLED):
                break
        stop.set()
        await asyncio.wait_for(agent, 20)

    run_with_broker(tmp_path, body)


def test_restarted_agent_recovers_its_attempt_without_rerunning(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        first = asyncio.create_task(run_agent(cfg, stop))
        s1 = await fake.next_session()
        first_epoch = (await s1.next("hello", skip=())).hello.epoch
        s1.welcome()
        s1.dispatch(1, "j1", 1, 3, make_spec(*counting_job(runs, seconds=1.5, code=6)))
        assert (await s1.next("ack")).ack.id == 1
        assert (await s1.next("job_event")).job_event.report_id == 1
        stop.set()
        await asyncio.wait_for(first, 20)

        stop2 = asyncio.Event()
        second = asyncio.create_task(run_agent(cfg, stop2))
        s2 = await fake.next_session()
        hello = (await s2.next("hello", skip=())).hello
        assert hello.epoch != first_epoch
        assert [(a.job_id, a.state) for a in hello.attempts] == [("j1", pb.JOB_STATE_RUNNING)]
        s2.welcome()
        assert (await s2.next("job_event")).job_event.report_id == 1
        s2.dispatch(1, "j1", 1, 3, make_spec(*counting_job(runs)))
        assert (await s2.next("ack")).ack.id == 1
        done = (await s2.next("job_event")).job_event
        assert (done.report_id, done.state, done.exit_code) == (2, pb.JOB_STATE_FAILED, 6)
        stop2.set()
        await asyncio.wait_for(second, 20)
        assert runs.read_text() == "run\n"

    run_with_broker(tmp_path, body)


def test_cli_run_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: zhangjiakou\nbroker: 127.0.0.1:1\n"
        "capacity: {source: static, pools: [{model: a800, count: 8}]}\n"
        "executor: {kind: local}\nstate_dir: ./agent-state\n"
    )

    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "site_agent",
            "run",
            "--config",
            str(config),
            "--broker",
            cfg.broker,
            stderr=asyncio.subprocess.PIPE,
        )
        session = await fake.next_session()
        assert (await session.next("hello", skip=())).hello.site_id == "zhangjiakou"
        session.welcome()
        await session.next("heartbeat", skip=())
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert "agent stopped site=zhangjiakou" in err.decode()
        assert (tmp_path / "agent-state" / "journal.sqlite3").exists()

    run_with_broker(tmp_path, body)


def test_a_one_way_cut_stops_attempts_while_the_stream_stays_up(tmp_path: Path) -> None:
    async def body(fake: FakeBroker, cfg: AgentConfig, stop: asyncio.Event) -> None:
        agent = asyncio.create_task(run_agent(cfg, stop))
        s1 = await fake.next_session()
        hello = (await s1.next("hello", skip=())).hello
        assert hello.heartbeat_sequence > 0
        s1.welcome(lease_s=1.0)
        s1.dispatch(1, "j1", 1, 3, make_spec("sleep", "60"))
        assert (await s1.next("ack")).ack.id == 1
        running = (await s1.next("job_event")).job_event
        assert running.state == pb.JOB_STATE_RUNNING
        s1.renew = False  # heartbeats still reach the broker; its answers no longer come back
        stopped = (await s1.next("job_event")).job_event
        assert (stopped.job_id, stopped.state, stopped.message) == (
            "j1",
            pb.JOB_STATE_CANCELLED,
            "lease expired",
        )
        assert fake.sessions.empty(), "the stream should have stayed up"
        stop.set()
        await asyncio.wait_for(agent, 20)

    run_with_broker(tmp_path, body)

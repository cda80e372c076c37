"""Hostile attempts against a real agent: its runtime, journal and local executor, real processes.

Whatever command and environment an attempt brings (NUL bytes, lone surrogates, huge strings,
an empty argv, programs that do not exist, variable names the OS refuses), the agent survives:
every attempt ends in a final state with a reason it can send to the broker, and an ordinary
job still runs afterwards, in the same agent and in one restarted from its journal.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from computenet.convert import job_event_report_to_proto
from computenet.site_messages import JobEventReport
from computenet.spec import JobSpec
from computenet.types import JobId, JobState
from site_agent.events import (
    CancelReceived,
    Connected,
    Connecting,
    DispatchReceived,
    LeaseRenewed,
    SendHello,
    Started,
)
from site_agent.executors.local import LocalExecutor
from site_agent.journal import Journal
from site_agent.records import Report
from site_agent.runtime import AgentRuntime
from site_agent.state import LAUNCH_FAILED_EXIT_CODE, AgentState
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for_async

SITE = "zhangjiakou"
HOUR_MS = 3_600_000
HUGE = "x" * 200_000  # past the kernel's limit on one argument (128 KiB)
PATH = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

any_char = st.characters(exclude_categories=())  # surrogates included
text = st.text(any_char, max_size=12)
hostile = st.one_of(text, st.just("\0"), st.just("\ud800"), st.just("\udcff"), st.just(HUGE))
program = st.one_of(
    st.sampled_from(["true", "false", "", "/no/such/dir/binary", "\0", "\udc80", HUGE]),
    # Names that cannot be a real program, so nothing harmful is ever run.
    text.map(lambda t: "cn-no-such-program-" + t),
)
command_st = st.one_of(
    st.just(()),
    st.tuples(program).flatmap(lambda p: st.lists(hostile, max_size=4).map(lambda a: (*p, *a))),
)
env_st = st.dictionaries(
    st.one_of(text, st.sampled_from(["A=B", "", "PATH", "=", "X\0"])), hostile, max_size=3
)


class Outbox:
    """Stands where the broker link would: keeps what the agent sends."""

    def __init__(self) -> None:
        self.reports: list[Report] = []

    def send_hello(self, hello: SendHello) -> None:
        pass

    def send_ack(self, delivery_id: int) -> None:
        pass

    def send_report(self, report: Report) -> None:
        self.reports.append(report)


class Agent:
    """A real agent core, journal and local executor, with a broker that only listens."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.journal = Journal(state_dir)
        self.executor = LocalExecutor(state_dir, cancel_grace_s=1.0, env=env)
        self.runtime = AgentRuntime(
            state=AgentState(self.journal.load()),
            journal=self.journal,
            executor=self.executor,
            site=SITE,
        )
        self.outbox = Outbox()
        self.runtime.outbox = self.outbox
        self.deliveries = 0

    async def connect(self) -> None:
        """Start as the agent process does, and run its executor loop in the background."""
        rt = self.runtime
        await rt.handle(Started(rt.stimulus_id("start"), rt.clock_ms(), rt.mono_ms()))
        await rt.handle(Connecting(rt.stimulus_id("connect")))
        await rt.handle(Connected(rt.stimulus_id("welcome"), rt.clock_ms(), 0))
        # the broker's welcome renews the lease from the hello; an hour outlasts the test
        now = rt.mono_ms()
        await rt.handle(LeaseRenewed(rt.stimulus_id("renew"), rt.clock_ms(), now, now, HOUR_MS))
        self.stop = asyncio.Event()
        self.loops = asyncio.create_task(rt.run_loops(self.stop, poll_interval_s=0.02))

    async def run(self, spec: JobSpec) -> Report:
        """Dispatch one attempt and wait for its final report to be sent."""
        rt = self.runtime
        self.deliveries += 1
        job_id = f"job-{self.deliveries}"
        dispatch = DispatchReceived(
            rt.stimulus_id("dispatch"), self.deliveries, job_id, 1, self.deliveries, spec
        )
        await rt.handle(dispatch)

        def final() -> Report | None:
            assert not self.loops.done(), "the agent's executor loop ended"
            mine = [r for r in self.outbox.reports if r.job_id == job_id]
            return mine[-1] if mine and mine[-1].state is not JobState.RUNNING else None

        return await wait_for_async(final, interval_s=0.02, what=f"{job_id} to end")

    async def close(self) -> None:
        self.stop.set()
        await self.loops
        self.journal.close()


def check_final(report: Report) -> None:
    assert report.state in (JobState.SUCCEEDED, JobState.FAILED), report
    if report.state is JobState.FAILED:
        assert report.message.strip(), "a failed attempt says why"
    assert report.launch_failed == (report.exit_code == LAUNCH_FAILED_EXIT_CODE), report
    # What the agent sends must fit the wire (valid UTF-8 strings), or the broker never hears it.
    wire = JobEventReport(
        report.report_id,
        JobId(report.job_id),
        report.attempt,
        report.fencing_token,
        report.state,
        report.exit_code,
        report.message,
        report.time_unix_ms,
        report.launch_failed,
    )
    job_event_report_to_proto(wire).SerializeToString()


def test_the_agent_survives_any_command_and_environment(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = dict(PATH)
    agent = Agent(state_dir, env)
    loop = asyncio.new_event_loop()
    ordinary = make_spec("sh", "-c", "echo fine")
    try:
        loop.run_until_complete(agent.connect())

        @settings(
            max_examples=100,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(command=command_st, extra_env=env_st)
        def attempt(command: tuple[str, ...], extra_env: dict[str, str]) -> None:
            # The executor reads its environment at each launch: this attempt gets the hostile one.
            env.clear()
            env.update({**PATH, **extra_env})
            spec = make_spec().model_copy(update={"command": command})  # as a broken broker might
            report = loop.run_until_complete(agent.run(spec))
            check_final(report)
            if not command or any("\0" in part for part in command):
                assert report.launch_failed, report
            env.clear()
            env.update(PATH)
            after = loop.run_until_complete(agent.run(ordinary))
            assert (after.state, after.exit_code) == (JobState.SUCCEEDED, 0), after

        attempt()
    finally:
        loop.run_until_complete(agent.close())
    # A restart from the journal all that left behind still starts and runs work.
    restarted = Agent(state_dir, dict(PATH))
    restarted.deliveries = 10_000
    try:
        loop.run_until_complete(restarted.connect())
        report = loop.run_until_complete(restarted.run(ordinary))
        assert (report.state, report.exit_code) == (JobState.SUCCEEDED, 0), report
    finally:
        loop.run_until_complete(restarted.close())
        loop.close()


class BrokenExecutor:
    """An executor whose every call raises something unexpected (a bug, a broken scheduler)."""

    kind = "broken"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []

    def start(self, launch: object) -> str:
        self.calls.append("start")
        raise self.error

    def poll(self) -> list[object]:
        self.calls.append("poll")
        raise self.error

    def cancel(self, key: object, checkpoint: bool = False) -> None:
        self.calls.append("cancel")
        raise self.error

    def recover(self, records: object) -> None:
        self.calls.append("recover")
        raise self.error


def test_whatever_an_executor_raises_fails_the_attempt_not_the_agent(tmp_path: Path) -> None:
    errors = [ValueError("embedded null byte"), KeyError("slurm_id"), RuntimeError("\ud800\0")]

    async def scenario() -> None:
        for i, error in enumerate(errors):
            agent = Agent(tmp_path / str(i), dict(PATH))
            broken = BrokenExecutor(error)
            agent.runtime.executor = broken  # type: ignore[assignment]
            await agent.connect()
            report = await agent.run(make_spec())
            check_final(report)
            assert report.launch_failed and type(error).__name__ in report.message
            await wait_for_async(lambda b=broken: "poll" in b.calls, what="a poll")  # type: ignore[misc]
            assert not agent.loops.done(), "the executor loop survives a failing poll"
            await agent.close()

    asyncio.run(scenario())


def test_a_failing_cancel_or_recovery_does_not_stop_the_agent(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = Agent(tmp_path, dict(PATH))
        real = agent.executor
        await agent.connect()
        rt = agent.runtime
        spec = make_spec("sh", "-c", "exec sleep 60")
        await rt.handle(DispatchReceived(rt.stimulus_id("dispatch"), 1, "sleeper", 1, 1, spec))
        await wait_for_async(
            lambda: any(r.job_id == "sleeper" for r in agent.outbox.reports), what="running"
        )
        rt.executor = BrokenExecutor(RuntimeError("scancel is down"))  # type: ignore[assignment]
        await rt.handle(CancelReceived(rt.stimulus_id("cancel"), 2, "sleeper", 1, "user"))
        await agent.close()
        # Restarted with an executor that cannot recover: the agent still comes up.
        again = Agent(tmp_path, dict(PATH))
        broken = BrokenExecutor(OSError(5, "Input/output error"))
        again.runtime.executor = broken  # type: ignore[assignment]
        await again.connect()
        assert "recover" in broken.calls and not again.loops.done()
        await again.close()
        # Clean up with the executor that launched it.
        real.cancel(("sleeper", 1))
        await wait_for_async(
            lambda: any(u.state is not JobState.RUNNING for u in real.poll()), what="the stop"
        )

    asyncio.run(scenario())

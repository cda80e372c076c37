"""The agent follows the leading broker replica over real gRPC streams on loopback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest

from computenet.v1 import site_service_pb2 as sp
from site_agent.app import run_agent
from site_agent.journal import LEADER_EPOCH_FILE, Journal
from tests.site_agent.fake_broker import FakeBroker, FollowerBroker, Session, serve
from tests.site_agent.helpers import make_spec
from tests.site_agent.test_link import agent_config

pytestmark = pytest.mark.timeout(120)

NOBODY = "127.0.0.1:1"
"""Nothing listens here: a replica that is down."""


def switches(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("broker switch")]


async def welcomed(fake: FakeBroker, leader_epoch: int = 0) -> Session:
    """The agent's next stream to `fake`, welcomed and beating (so the welcome was handled)."""
    session = await fake.next_session()
    await session.next("hello", skip=("capacity", "job_event", "ack"))
    session.welcome(leader_epoch=leader_epoch)
    await session.next("heartbeat", skip=("job_event",))
    return session


def journal_jobs(state_dir: Path) -> set[str]:
    """The jobs the agent holds attempts of, read from its own journal."""
    journal = Journal(state_dir)
    try:
        return {r.job_id for r in journal.load().attempts}
    finally:
        journal.close()


def drained(session: Session) -> list[str]:
    """The kinds of message the agent sent on a stream, taken without waiting."""
    kinds = []
    while not session.inbox.empty():
        kinds.append(session.inbox.get_nowait().WhichOneof("msg"))
    return kinds


def test_the_agent_goes_from_a_follower_to_the_leader_it_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="site_agent.link")

    async def main() -> None:
        leader, second_leader = FakeBroker(), FakeBroker()
        leader_server, leader_address = await serve(leader)
        second_server, second_address = await serve(second_leader)
        follower = FollowerBroker(leader_agent_address=leader_address)
        follower_server, follower_address = await serve(follower)
        # the leader's address is not in the list: only the follower's answer leads there
        cfg = agent_config(tmp_path / "state", f"{NOBODY},{follower_address}")
        stop = asyncio.Event()
        agent = asyncio.create_task(run_agent(cfg, stop))
        try:
            first = await welcomed(leader)
            assert switches(caplog) == [
                f"broker switch from={NOBODY} to={follower_address} reason=unavailable",
                f"broker switch from={follower_address} to={leader_address} reason=not_leader",
            ]
            assert follower.streams == 1
            first.dispatch(1, "j1", 1, 3, make_spec("true"))
            assert (await first.next("ack")).ack.id == 1

            # the leader dies; the follower now names its successor
            follower.leader_agent_address = second_address
            await leader_server.stop(None)
            second = await welcomed(second_leader)
            assert switches(caplog)[-1] == (
                f"broker switch from={follower_address} to={second_address} reason=not_leader"
            )
            second.dispatch(2, "j2", 1, 4, make_spec("true"))
            ack = await second.next("ack", skip=("capacity", "job_event"))
            assert ack.ack.id == 2
            stop.set()
            await asyncio.wait_for(agent, 20)
        finally:
            stop.set()
            for server in (leader_server, second_server, follower_server):
                await server.stop(None)

    asyncio.run(main())


def test_a_welcome_under_an_older_leader_epoch_is_refused_and_the_agent_moves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="site_agent.link")

    async def main() -> None:
        fakes = [FakeBroker(), FakeBroker(), FakeBroker()]
        served = [await serve(fake) for fake in fakes]
        (a, b, c), (a_addr, b_addr, c_addr) = fakes, [address for _, address in served]
        cfg = agent_config(tmp_path / "state", ",".join((a_addr, b_addr, c_addr)))
        stop = asyncio.Event()
        agent = asyncio.create_task(run_agent(cfg, stop))
        try:
            first = await welcomed(a, leader_epoch=5)
            assert (cfg.state_dir / LEADER_EPOCH_FILE).read_text() == "5\n"
            a.reject = grpc.StatusCode.UNAVAILABLE  # this replica goes away
            first.drop()

            stale = await b.next_session()
            await stale.next("hello", skip=())
            stale.welcome(leader_epoch=3)
            stale.dispatch(1, "stale-job", 1, 9, make_spec("true"))

            fresh = await welcomed(c, leader_epoch=6)
            fresh.dispatch(1, "fresh-job", 1, 9, make_spec("true"))
            assert (await fresh.next("ack")).ack.id == 1
            assert drained(stale) == [], "nothing may answer a refused welcome"
            assert journal_jobs(cfg.state_dir) == {"fresh-job"}
            assert (cfg.state_dir / LEADER_EPOCH_FILE).read_text() == "6\n"
            assert f"broker switch from={b_addr} to={c_addr} reason=stale_leader_epoch" in (
                switches(caplog)
            )
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(
                f"broker refused target={b_addr} leader_epoch=3 highest_leader_epoch=5" in w
                for w in warnings
            )
            stop.set()
            await asyncio.wait_for(agent, 20)
        finally:
            stop.set()
            for server, _ in served:
                await server.stop(None)

    asyncio.run(main())


def test_the_highest_leader_epoch_survives_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        leader, old_leader = FakeBroker(), FakeBroker()
        leader_server, leader_address = await serve(leader)
        old_server, old_address = await serve(old_leader)
        try:
            stop = asyncio.Event()
            first = asyncio.create_task(
                run_agent(agent_config(tmp_path / "state", leader_address), stop)
            )
            await welcomed(leader, leader_epoch=5)
            stop.set()
            await asyncio.wait_for(first, 20)

            # restarted, it tries the deposed leader first and must not take its word
            cfg = agent_config(tmp_path / "state", f"{old_address},{leader_address}")
            stop = asyncio.Event()
            second = asyncio.create_task(run_agent(cfg, stop))
            stale = await old_leader.next_session()
            await stale.next("hello", skip=())
            stale.welcome(leader_epoch=4)
            stale.dispatch(1, "stale-job", 1, 9, make_spec("true"))
            current = await welcomed(leader, leader_epoch=5)
            current.send(drain=sp.Drain(delivery_id=7, drain=True))
            assert (await current.next("ack")).ack.id == 7
            assert drained(stale) == []
            assert journal_jobs(cfg.state_dir) == set()
            stop.set()
            await asyncio.wait_for(second, 20)
        finally:
            await leader_server.stop(None)
            await old_server.stop(None)

    asyncio.run(main())


def test_a_broker_that_goes_silent_behind_an_open_stream_is_left_for_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frozen leader keeps its connections open (the kernel still answers for it); the agent
    must not wait for keepalive, or for its lease to end, before trying the next replica."""
    caplog.set_level(logging.INFO, logger="site_agent.link")

    async def main() -> None:
        frozen, successor = FakeBroker(), FakeBroker()
        frozen_server, frozen_address = await serve(frozen)
        successor_server, successor_address = await serve(successor)
        cfg = agent_config(tmp_path / "state", f"{frozen_address},{successor_address}")
        stop = asyncio.Event()
        agent = asyncio.create_task(run_agent(cfg, stop))
        try:
            first = await welcomed(frozen, leader_epoch=1)
            first.renew = False  # heartbeats still arrive, nothing comes back
            await welcomed(successor, leader_epoch=2)
            assert switches(caplog)[-1] == (
                f"broker switch from={frozen_address} to={successor_address} reason=silent"
            )
            stop.set()
            await asyncio.wait_for(agent, 20)
        finally:
            stop.set()
            for server in (frozen_server, successor_server):
                await server.stop(None)

    asyncio.run(main())

"""The accounting loop over a real SQLite store: periodic increments, ends, and no double counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.accounting.accountant import UsageAccountant
from broker.accounting.pricing import cst_day_start_ms
from broker.store import Hold, SqlStore, Transition, open_store
from broker.writer import StoreWriter
from computenet.types import JobId, JobState, SiteId
from tests.store.factories import SetClock, new_job
from tests.support.waiting import wait_for_async
from topology import default_topology

H = 3_600_000
T0 = cst_day_start_ms("2026-12-05") + 10 * H
TOPO = default_topology()


@pytest.fixture
def clock() -> SetClock:
    return SetClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: SetClock) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'b.db'}", clock=clock)
    yield opened
    opened.close()


def _run(store: SqlStore, job_id: str, cards: int = 8) -> None:
    store.submit_jobs([new_job(job_id)])
    hold = Hold(JobId(job_id), 1, SiteId("horinger"), "a800", cards, 4.0, 64.0)
    placed = Transition(
        JobId(job_id),
        JobState.PLACED,
        "placement",
        site=SiteId("horinger"),
        attempt=1,
        holds=(hold,),
    )
    store.apply([placed, Transition(JobId(job_id), JobState.RUNNING, "reported")])


def _end(store: SqlStore, job_id: str) -> None:
    store.apply([Transition(JobId(job_id), JobState.SUCCEEDED, "reported", release_hold=True)])


def _accountant(writer: StoreWriter, clock: SetClock, **extra: object) -> UsageAccountant:
    return UsageAccountant(writer=writer, topology=TOPO, clock=clock, **extra)  # type: ignore[arg-type]


def test_running_attempts_are_priced_up_to_now_then_to_their_end(
    store: SqlStore, clock: SetClock
) -> None:
    async def main() -> None:
        writer = StoreWriter(store)
        accountant = _accountant(writer, clock)
        _run(store, "j1")
        clock.now_unix_ms = T0 + H // 2
        [first] = await accountant.account()
        assert (first.from_unix_ms, first.to_unix_ms) == (T0, T0 + H // 2)
        clock.now_unix_ms = T0 + H
        _end(store, "j1")
        clock.now_unix_ms = T0 + 5 * H  # the end is priced at the end, not at the pass
        [second] = await accountant.account()
        assert (second.from_unix_ms, second.to_unix_ms) == (T0 + H // 2, T0 + H)
        assert await accountant.account() == []
        [record] = store.usage_records()
        assert record.totals.card_hours == pytest.approx(8.0)
        assert record.totals.card_cny == pytest.approx(56.0)

    asyncio.run(main())


def test_two_accountants_never_count_a_stretch_twice(store: SqlStore, clock: SetClock) -> None:
    async def main() -> None:
        writer = StoreWriter(store)
        recorded: list[object] = []
        a = _accountant(writer, clock, on_recorded=recorded.extend)
        b = _accountant(writer, clock, on_recorded=recorded.extend)
        _run(store, "j1")
        _run(store, "j2", cards=4)
        for minute in range(1, 30):
            clock.now_unix_ms = T0 + minute * 60_000
            await asyncio.gather(a.account(), b.account())
        clock.now_unix_ms = T0 + H
        _end(store, "j1")
        _end(store, "j2")
        await asyncio.gather(a.account(), b.account(), a.account())
        totals = sum(r.totals.card_hours for r in store.usage_records())
        assert totals == pytest.approx(12.0)
        assert sum(line.card_hours for inc in recorded for line in inc.lines) == pytest.approx(12.0)

    asyncio.run(main())


def test_the_loop_prices_an_ended_attempt_without_waiting_for_its_interval(
    store: SqlStore, clock: SetClock
) -> None:
    async def main() -> None:
        writer = StoreWriter(store)
        writer.on_events(lambda events: accountant.observe(events))
        accountant = _accountant(writer, clock, every_s=3600.0)
        stop = asyncio.Event()
        task = asyncio.create_task(accountant.run(stop))
        try:
            _run(store, "j1")
            await asyncio.sleep(0)
            clock.now_unix_ms = T0 + H
            await writer.apply(
                [Transition(JobId("j1"), JobState.SUCCEEDED, "reported", release_hold=True)]
            )

            await wait_for_async(
                lambda: not store.open_runs() and bool(store.usage_records()), timeout_s=10.0
            )
            [record] = store.usage_records()
            assert record.totals.card_hours == pytest.approx(8.0)
        finally:
            stop.set()
            await task

    asyncio.run(main())


def test_the_config_file_sets_how_often_usage_is_priced() -> None:
    from broker.config.schema import BrokerConfig
    from broker.config.settings import broker_settings

    assert broker_settings(BrokerConfig()).usage_every_s == 60.0
    config = BrokerConfig.model_validate({"accounting": {"every_s": 5}})
    assert broker_settings(config).usage_every_s == 5.0
    with pytest.raises(ValueError, match="every_s"):
        BrokerConfig.model_validate({"accounting": {"every_s": 0}})


def test_only_ends_wake_the_loop_and_a_wake_prices_ended_runs_only(
    store: SqlStore, clock: SetClock
) -> None:
    async def main() -> None:
        writer = StoreWriter(store)
        accountant = _accountant(writer, clock)
        _run(store, "j1")
        _run(store, "j2")
        submitted = store.events_after(0, job_id=JobId("j1"))[0]
        accountant.observe([submitted])
        assert not accountant.woken
        clock.now_unix_ms = T0 + H
        _end(store, "j1")
        [ended] = store.events_after(0, job_id=JobId("j1"))[-1:]
        accountant.observe([ended])
        assert accountant.woken
        [inc] = await accountant.account(ended_only=True)
        assert inc.job_id == "j1"
        [running] = store.open_runs()
        assert running.job_id == "j2" and running.accounted_until_unix_ms == T0

    asyncio.run(main())

"""Submissions written by a child process: same outcomes, commit order kept with the
transitions the broker process applies, and a lost child costs no acknowledged job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.store import NewJob, Transition, open_store
from broker.store.errors import StorageUnavailableError
from broker.store.submission import Submission
from broker.store.submit import write_batch
from broker.store.submit_process import SubmitProcess
from broker.writer import StoreWriter
from computenet.types import Job, JobEvent, JobId, JobState, TenantId
from tests.store.factories import new_job, spec

SUBMITTERS = 16
JOBS_PER_SUBMITTER = 25


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database of each kind, as a URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'broker.db'}"
    else:
        url = str(request.getfixturevalue("postgres_db_url"))
    open_store(url).close()
    return url


@pytest.fixture
def writer(db_url: str) -> Iterator[StoreWriter]:
    """A store writer whose submissions go through a child process."""
    opened = StoreWriter(open_store(db_url), submit_url=db_url)
    assert opened._process is not None
    try:
        yield opened
    finally:
        opened.close()


def _new(n: int, tenant: str = "t") -> NewJob:
    return new_job(f"job-{tenant}-{n}", tenant=tenant, request_id=f"r{n}")


def test_in_memory_sqlite_keeps_the_writer_thread() -> None:
    assert not SubmitProcess.supports("sqlite://")
    assert not SubmitProcess.supports("sqlite:///:memory:")
    assert SubmitProcess.supports("sqlite:///broker.db")
    assert SubmitProcess.supports("postgresql+psycopg://u@127.0.0.1:5432/db")


def test_outcomes_match_the_store_contract(writer: StoreWriter) -> None:
    async def main() -> None:
        first = await writer.submit(_new(1))
        assert first.job is not None and not first.duplicate and first.job.last_sequence == 1
        again = await writer.submit(
            new_job("other-id", tenant="t", request_id="r1", job_spec=spec("job-t-1"))
        )
        assert again.duplicate and again.job == first.job
        clash = await writer.submit(new_job("x", tenant="t", request_id="r1", job_spec=spec("y")))
        assert clash.conflict and clash.job is None
        retry = new_job("job-t-2b", tenant="t", request_id="r2", job_spec=spec("job-t-2"))
        same_batch = await asyncio.gather(writer.submit(_new(2)), writer.submit(retry))
        assert [o.duplicate for o in same_batch].count(True) == 1
        assert same_batch[0].job is not None and same_batch[0].job.job_id == "job-t-2"
        assert writer.store.last_sequence() == 2

    asyncio.run(main())


def test_commit_order_holds_with_transitions_of_the_broker_process(
    writer: StoreWriter, db_url: str
) -> None:
    """Submissions (child) and cancellations (writer thread here) race; a reader polling the
    events never sees a number below one it saw, nor a gap filled later."""
    created_order: list[int] = []
    published: list[list[int]] = []
    seen: list[int] = []
    stop = threading.Event()
    failures: list[str] = []

    def follow() -> None:
        with open_store(db_url) as reader:
            last = 0
            while not stop.is_set() or last < reader.last_sequence():
                for event in reader.events_after(last, limit=500):
                    if event.sequence != last + 1:
                        failures.append(f"saw {event.sequence} right after {last}")
                    last = event.sequence
                    seen.append(last)

    def on_created(jobs: list[Job]) -> None:
        created_order.extend(j.last_sequence for j in jobs)

    writer.on_created(on_created)  # type: ignore[arg-type]
    writer.on_events(lambda events: published.append([e.sequence for e in events]))

    async def submitter(k: int, cancels: list[asyncio.Task[list[JobEvent | None]]]) -> None:
        for n in range(JOBS_PER_SUBMITTER):
            outcome = await writer.submit(_new(n, tenant=f"s{k}"))
            assert outcome.job is not None
            if n % 3 == 0:
                cancel = Transition(
                    job_id=outcome.job.job_id,
                    new_state=JobState.CANCELLED,
                    cause="cancelled",
                    expect_states=frozenset({JobState.PENDING}),
                )
                cancels.append(asyncio.create_task(writer.apply([cancel])))

    async def main() -> None:
        cancels: list[asyncio.Task[list[JobEvent | None]]] = []
        await asyncio.gather(*(submitter(k, cancels) for k in range(SUBMITTERS)))
        results = await asyncio.gather(*cancels)
        assert all(event is not None for (event,) in results)

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        reader.join(timeout=60)
    total = SUBMITTERS * JOBS_PER_SUBMITTER
    cancelled = SUBMITTERS * len(range(0, JOBS_PER_SUBMITTER, 3))
    assert not failures
    assert seen == list(range(1, total + cancelled + 1))
    assert created_order == sorted(created_order) and len(created_order) == total
    assert all(batch == sorted(batch) for batch in published)


def test_a_killed_child_is_replaced_and_its_commits_count_as_created(
    writer: StoreWriter, db_url: str
) -> None:
    process = writer._process
    assert process is not None

    async def main() -> None:
        first = await writer.submit(_new(1))
        assert first.job is not None
        child = process._child
        assert child is not None
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=10)
        # As if the lost child had committed this batch but died before answering:
        lost = [_new(2), _new(3)]
        with open_store(db_url) as other, other._writer.begin() as connection:
            write_batch(connection, [Submission.of(n) for n in lost])
        outcomes = await asyncio.gather(*(writer.submit(n) for n in [*lost, _new(4)]))
        assert [(o.job.job_id if o.job else None, o.duplicate) for o in outcomes] == [
            ("job-t-2", False),
            ("job-t-3", False),
            ("job-t-4", False),
        ]
        assert [o.job.last_sequence for o in outcomes if o.job] == [2, 3, 4]
        assert process._child is not None and process._child.proc.pid != child.proc.pid

    asyncio.run(main())


_ORPHAN_SCRIPT = """
import asyncio, sys
from broker.store.submit_process import SubmitProcess
from broker.store.submission import Submission
from tests.store.factories import new_job

async def main():
    process = SubmitProcess(sys.argv[1])
    await process.write([Submission.of(new_job("j1"))])
    print(process._child.proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_child_dies_with_its_parent(db_url: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_jobs_of_other_tenants_are_independent(writer: StoreWriter) -> None:
    async def main() -> None:
        outcomes = await asyncio.gather(*(writer.submit(_new(1, tenant=t)) for t in "abc"))
        assert {o.job.tenant for o in outcomes if o.job} == {TenantId(t) for t in "abc"}
        assert not any(o.duplicate for o in outcomes)
        assert writer.store.get_job(JobId("job-a-1")) is not None

    asyncio.run(main())


def test_a_child_that_cannot_start_leaves_submissions_to_the_writer_thread(db_url: str) -> None:
    writer = StoreWriter(open_store(db_url), submit_url=db_url)
    assert writer._process is not None
    writer._process.close()
    writer._process.module = "broker.no_such_module"  # the next child fails at once

    async def main() -> None:
        outcomes = await asyncio.gather(*(writer.submit(_new(n)) for n in range(3)))
        assert [o.job.last_sequence for o in outcomes if o.job] == [1, 2, 3]
        assert writer._process is None
        again = await writer.submit(_new(3))
        assert again.job is not None and again.job.last_sequence == 4

    try:
        asyncio.run(main())
    finally:
        writer.close()


def test_a_database_the_child_cannot_open_fails_batches_not_the_writer(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing' / 'broker.db'}"  # the folder does not exist
    writer = StoreWriter(open_store("sqlite://"), submit_url=missing)

    async def main() -> None:
        for n in range(2):  # a database that cannot be opened is a fault to retry, typed so
            with pytest.raises(StorageUnavailableError, match="unable to open database file"):
                await writer.submit(_new(n))
        assert await writer.read(writer.store.last_sequence) == 0

    try:
        asyncio.run(main())
    finally:
        writer.close()

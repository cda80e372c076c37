"""Runs store calls off the event loop: one writer thread (ordered, group-committed) and readers.

Every write of the broker goes through the single writer thread, except submission batches,
which a child process writes when the store is a file or a server (broker.store.SubmitProcess).
Either way each write transaction locks the event sequence counter first, so sequence numbers
are committed in order. Submissions that arrive while a commit is in flight are gathered into
the next batch and committed together: one fsync for many acknowledged jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

from broker.store import SubmitProcess, WorkerStartError
from broker.store.errors import translating
from broker.store.protocol import Fence, Hold, NewJob, Store, SubmitOutcome, Transition
from computenet.types import Job, JobEvent, JobId, JobState

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HoldChange:
    """What one committed transition did to the capacity ledger: if `release`, the job's
    holds went, then `holds` were added (the store's rule)."""

    job_id: JobId
    release: bool
    holds: tuple[Hold, ...]


HoldListener = Callable[[Sequence[HoldChange] | None], None]

MAX_SUBMIT_BATCH = 512


class StoreWriter:
    """Async façade over a synchronous Store with ordered writes and group commit."""

    def __init__(self, store: Store, *, readers: int = 2, submit_url: str | None = None) -> None:
        """Serve `store`; with `submit_url` (the store's own URL), submission batches are
        written by a child process on that database instead of the writer thread."""
        self.store = store
        self._process: SubmitProcess | None = None
        if submit_url is not None and SubmitProcess.supports(submit_url):
            try:
                self._process = SubmitProcess(submit_url)
            except OSError:
                log.exception("cannot start the submission process: using the writer thread")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="store-reader")
        self._queue: list[tuple[NewJob, asyncio.Future[SubmitOutcome]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Sequence[JobEvent]], None]] = []
        self._created_listeners: list[Callable[[Sequence[Job]], None]] = []
        self._hold_listeners: list[HoldListener] = []
        self._turn: asyncio.Lock | None = None
        self._turn_loop: asyncio.AbstractEventLoop | None = None

    def on_events(self, listener: Callable[[Sequence[JobEvent]], None]) -> None:
        """Call `listener` (on the event loop) with every batch of committed events."""
        self._listeners.append(listener)

    def on_created(self, listener: Callable[[Sequence[Job]], None]) -> None:
        """Call `listener` with newly created jobs, just before their first events."""
        self._created_listeners.append(listener)

    def on_holds(self, listener: HoldListener) -> None:
        """Call `listener` (on the event loop) with the ledger changes of every committed batch
        of transitions, in commit order, before their events are published; with None when a
        batch's write raised (its outcome is unknown here)."""
        self._hold_listeners.append(listener)

    def _publish(self, events: Sequence[JobEvent]) -> None:
        if events:
            for listener in self._listeners:
                listener(events)

    async def submit(self, new_job: NewJob) -> SubmitOutcome:
        """Make one submission durable; returns once its batch is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SubmitOutcome] = loop.create_future()
        self._queue.append((new_job, future))
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._queue[:MAX_SUBMIT_BATCH]
                del self._queue[:MAX_SUBMIT_BATCH]
                jobs = [item for item, _ in batch]
                try:
                    results = await self._write_submissions(loop, jobs)
                except Exception as exc:  # every waiter learns the batch failed
                    log.exception("submit batch failed size=%d", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                created = []
                for (_, future), outcome in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(outcome)
                    if outcome.job is not None and not outcome.duplicate:
                        created.append(outcome.job)
                self._publish_created(created)
        finally:
            self._flushing = False

    async def _write_submissions(
        self, loop: asyncio.AbstractEventLoop, jobs: list[NewJob]
    ) -> list[SubmitOutcome]:
        if self._process is not None:
            try:
                async with self._write_turn(loop):
                    results = await self._process.submit_jobs(jobs)
                return _recognised(jobs, results)
            except WorkerStartError:
                log.error("submission process cannot start: submissions go to the writer thread")
                self._process.close()
                self._process = None
        results = await loop.run_in_executor(
            self._writer, translating(functools.partial(self.store.submit_jobs, jobs))
        )
        return _recognised(jobs, results)

    def _publish_created(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        for listener in self._created_listeners:
            listener(jobs)
        events = [
            JobEvent(
                sequence=j.last_sequence,
                job_id=j.job_id,
                state=JobState.PENDING,
                cause="submitted",
                time_unix_ms=j.created_unix_ms,
            )
            for j in jobs
        ]
        self._publish(events)

    async def apply(
        self,
        transitions: Sequence[Transition],
        *,
        fence: Fence | tuple[Fence, ...] | None = None,
    ) -> list[JobEvent | None]:
        """Apply compare-and-set transitions on the writer thread; publishes the events.

        With a `fence` (or several), the store writes only while each token holds
        (FenceLostError otherwise).
        """
        if not transitions:
            return []
        batch = list(transitions)
        try:
            results = await self.write(functools.partial(self.store.apply, batch, fence=fence))
        except BaseException:
            for listener in self._hold_listeners:
                listener(None)
            raise
        # Writes take turns, and this runs in the same step as the write's completion, so
        # listeners see batches in commit order.
        if self._hold_listeners:
            changes = [
                HoldChange(t.job_id, t.release_hold, t.holds)
                for t, event in zip(batch, results, strict=True)
                if event is not None and (t.release_hold or t.holds)
            ]
            for listener in self._hold_listeners:
                listener(changes)
        self._publish([e for e in results if e is not None])
        return results

    async def write(self, fn: Callable[[], T]) -> T:
        """Run any other write on the writer thread, ordered with the rest."""
        loop = asyncio.get_running_loop()
        async with self._write_turn(loop):
            return await loop.run_in_executor(self._writer, translating(fn))

    def _write_turn(self, loop: asyncio.AbstractEventLoop) -> AbstractAsyncContextManager[object]:
        """Taken around each write transaction when a child process writes submissions.

        The database would serialise the two writers anyway, but a SQLite writer finding the
        lock taken sleeps and polls (its busy handler), and under a flood of submissions a
        transition could wait on it for a long time. Taking turns here (first come, first
        served) means neither ever finds the database locked by the other.
        """
        if self._process is None:
            return contextlib.nullcontext()
        if self._turn is None or self._turn_loop is not loop:
            self._turn, self._turn_loop = asyncio.Lock(), loop
        return self._turn

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a read on a reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, translating(fn))

    def close(self) -> None:
        """Wait for queued writes, then release the threads, the child process and the store."""
        if self._process is not None:
            self._process.close()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.store.close()


def _recognised(jobs: Sequence[NewJob], results: list[SubmitOutcome]) -> list[SubmitOutcome]:
    """Outcomes of a batch, a "duplicate" of a submission's own job id counted as created.

    Job ids are new for every submission, so the only way to find one's own job id stored
    already is an earlier attempt at this very batch that committed but whose answer was
    lost (the submission process died): the job was created by this submission.
    """
    return [
        SubmitOutcome(job=outcome.job)
        if outcome.duplicate and outcome.job is not None and outcome.job.job_id == new.job_id
        else outcome
        for new, outcome in zip(jobs, results, strict=True)
    ]

"""Carries out the core's instructions: journal writes, executor calls, and sends via the link."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from computenet.types import CapacityReport
from site_agent.capacity.base import (
    CapacitySource,
    Usage,
    apply_drain,
    apply_usage,
    mark_federation,
    with_energy,
)
from site_agent.checkpoints import CheckpointTransfer
from site_agent.energy import EnergyFeed
from site_agent.events import (
    PERSIST_INSTRUCTIONS,
    AttemptLaunched,
    CheckpointExported,
    Event,
    ExecutorReported,
    ExportCheckpoint,
    Instruction,
    LaunchFailed,
    LeaseCheck,
    PublishLease,
    RecoverAttempts,
    RefuseWelcome,
    SendAck,
    SendHello,
    SendReport,
    StartAttempt,
    Started,
    StopAttempt,
)
from site_agent.executors.base import Executor, ExecutorError, Launch
from site_agent.executors.wrapper import monotonic_ms
from site_agent.journal import Journal
from site_agent.records import AttemptKey, Phase, Report
from site_agent.state import AgentState

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)


class Outbox(Protocol):
    """Where sends go: the broker link (which drops them while no stream is up)."""

    def send_hello(self, hello: SendHello) -> None:
        """Queue the hello."""
        ...

    def send_ack(self, delivery_id: int) -> None:
        """Queue an acknowledgement of a broker delivery."""
        ...

    def send_report(self, report: Report) -> None:
        """Queue a job event report."""
        ...

    def refuse_welcome(self, refusal: RefuseWelcome) -> None:
        """End the stream being welcomed without acting on anything from it."""
        ...


class _NoOutbox:
    def send_hello(self, hello: SendHello) -> None:
        log.debug("no broker stream; hello dropped")

    def send_ack(self, delivery_id: int) -> None:
        log.debug("no broker stream; ack dropped delivery_id=%d", delivery_id)

    def send_report(self, report: Report) -> None:
        log.debug("no broker stream; report kept for later report_id=%d", report.report_id)

    def refuse_welcome(self, refusal: RefuseWelcome) -> None:
        log.debug("no broker stream; refusal dropped leader_epoch=%d", refusal.leader_epoch)


class AgentRuntime:
    """Feeds events to the AgentState one at a time and carries out what it decides, in order."""

    def __init__(
        self,
        *,
        state: AgentState,
        journal: Journal,
        executor: Executor,
        site: str,
        clock_ms: Callable[[], int] = wall_clock_ms,
        mono_ms: Callable[[], int] = monotonic_ms,
        checkpoints: CheckpointTransfer | None = None,
    ) -> None:
        """`checkpoints` moves checkpoints to and from the site's store; None keeps them local
        (and refuses dispatches that ask to restore one)."""
        self.state = state
        self.journal = journal
        self.executor = executor
        self.site = site
        self.clock_ms = clock_ms
        self.mono_ms = mono_ms
        """The lease's clock (boot time): wall-clock steps on the agent do not move it."""
        self.outbox: Outbox = _NoOutbox()
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self.checkpoints = checkpoints
        self._transfers: dict[tuple[str, AttemptKey], asyncio.Task[None]] = {}
        """Checkpoint exports and imports under way, beside the lock (they may take minutes)."""

    def stimulus_id(self, kind: str) -> str:
        """A fresh stimulus id naming its cause, e.g. `poll-17`."""
        return f"{kind}-{next(self._ids)}"

    def lease_check(self) -> LeaseCheck:
        """A lease check at the current time."""
        return LeaseCheck(self.stimulus_id("lease"), self.clock_ms(), self.mono_ms())

    async def handle(self, event: Event) -> None:
        """Apply one event and carry out its instructions before the next event is taken.

        The lease is checked first, at the time the event is taken: an agent waking from a stall
        stops what its lease no longer covers before it acts on anything it read meanwhile.
        """
        async with self._lock:
            if not isinstance(event, Started | LeaseCheck):
                await self._handle(self.lease_check())
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        instructions = self.state.handle(event)
        pending: list[Instruction] = []
        for item in instructions:
            if isinstance(item, PERSIST_INSTRUCTIONS):
                pending.append(item)
                continue
            await self._flush(pending)
            pending = []
            await self._carry_out(item)
        await self._flush(pending)

    async def _flush(self, writes: list[Instruction]) -> None:
        if writes:
            await asyncio.to_thread(self.journal.apply, writes)

    async def _carry_out(self, item: Instruction) -> None:
        if isinstance(item, SendHello):
            self.outbox.send_hello(item)
        elif isinstance(item, SendAck):
            self.outbox.send_ack(item.delivery_id)
        elif isinstance(item, SendReport):
            self.outbox.send_report(item.report)
        elif isinstance(item, RefuseWelcome):
            self.outbox.refuse_welcome(item)
        elif isinstance(item, StartAttempt):
            if item.record.restore_ref:
                self._beside("import", item.record.key, self._start_restored(item))
            else:
                await self._start(item)
        elif isinstance(item, StopAttempt):
            # SIGTERM first on every executor, the job's cue to write its checkpoint
            log.info(
                "stopping job_id=%s attempt=%d reason=%s checkpoint=%s",
                *item.key,
                item.reason,
                item.checkpoint,
            )
            try:
                await asyncio.to_thread(self.executor.cancel, item.key, item.checkpoint)
            except Exception:
                # The attempt keeps its stop reason; the broker's cancel or the lease retries.
                log.exception("cancel failed job_id=%s attempt=%d", *item.key)
        elif isinstance(item, ExportCheckpoint):
            self._beside("export", item.key, self._export(item.key))
        elif isinstance(item, PublishLease):
            try:
                await asyncio.to_thread(
                    self.executor.set_lease, item.expiry_mono_ms, item.stop_lead_ms
                )
            except Exception:
                # the agent's own lease check still stops attempts; only the watchdog is late
                log.exception("publishing the lease to the executor failed")
        elif isinstance(item, RecoverAttempts):
            log.info("recovering attempts=%d", len(item.records))
            try:
                await asyncio.to_thread(self.executor.recover, item.records)
            except Exception:
                log.exception("recovering attempts failed; the executor reports what it lost")

    def _beside(self, kind: str, key: AttemptKey, work: Coroutine[Any, Any, None]) -> None:
        """Run a checkpoint transfer outside the lock: a large one must not hold up the lease
        renewals and other attempts' events meanwhile. One of each kind per attempt at a time."""
        if (kind, key) in self._transfers:
            work.close()
            return
        task = asyncio.create_task(work)
        self._transfers[(kind, key)] = task
        task.add_done_callback(lambda _: self._transfers.pop((kind, key), None))

    async def _export(self, key: AttemptKey) -> None:
        job_id, attempt = key
        try:
            exported = (
                await asyncio.to_thread(self.checkpoints.export, job_id, attempt)
                if self.checkpoints is not None
                else None
            )
            ref, size = (exported.ref, exported.size_bytes) if exported else ("", 0)
            if exported is None:
                log.info("checkpoint kept local job_id=%s attempt=%d (no store)", *key)
            sid = self.stimulus_id("export")
            await self.handle(CheckpointExported(sid, job_id, attempt, ref, size, self.clock_ms()))
        except Exception:
            # the attempt stays exporting; the next agent start exports it again
            log.exception("checkpoint export failed job_id=%s attempt=%d", *key)

    async def transfers_done(self) -> None:
        """Wait for the checkpoint exports and imports under way (for shutdown and tests)."""
        while self._transfers:
            await asyncio.gather(*self._transfers.values(), return_exceptions=True)

    async def _restore(self, job_id: str, attempt: int, ref: str) -> str:
        """Import checkpoint `ref` for the attempt; raise ExecutorError if it cannot be had."""
        if not ref:
            return ""
        if self.checkpoints is None:
            raise ExecutorError(
                f"cannot restore checkpoint {ref}: this agent has no checkpoint store configured"
            )
        folder = await asyncio.to_thread(self.checkpoints.restore, job_id, attempt, ref)
        return str(folder)

    async def _start_restored(self, item: StartAttempt) -> None:
        """Import the attempt's checkpoint, then start it if it is still to be started."""
        record = item.record
        try:
            restored = await self._restore(record.job_id, record.attempt, record.restore_ref)
        except Exception as exc:
            # never start fresh what should resume: a failed import fails the launch
            await self.handle(self._launch_failed(record.key, exc))
            return
        async with self._lock:
            await self._handle(self.lease_check())  # the import may have outlasted the lease
            now = self.state.attempts.get(record.key)
            if now is None or now.phase is not Phase.ACCEPTED:
                # stopped while its checkpoint was being imported (cancel, lease end)
                log.info("not started after import job_id=%s attempt=%d", *record.key)
                return
            await self._start(item, restored)

    def _launch_failed(self, key: AttemptKey, exc: BaseException) -> LaunchFailed:
        message = launch_failure_message(exc)
        log.warning("launch failed job_id=%s attempt=%d error=%s", *key, message)
        return LaunchFailed(self.stimulus_id("launch"), *key, message, self.clock_ms())

    async def _start(self, item: StartAttempt, restored: str = "") -> None:
        record = item.record
        sid = self.stimulus_id("launch")
        try:
            if record.spec is None:
                raise ExecutorError("the attempt has no spec to run")
            launch = Launch(
                record.job_id,
                record.attempt,
                record.fencing_token,
                record.spec,
                self.site,
                restore_dir=restored,
            )
            handle = await asyncio.to_thread(self.executor.start, launch)
        except Exception as exc:
            # Whatever the executor raises fails this attempt, never the agent.
            await self._handle(self._launch_failed(record.key, exc))
            return
        await self._handle(AttemptLaunched(sid, record.job_id, record.attempt, handle))

    async def poll_executor(self) -> None:
        """Ask the executor for state changes and feed them to the core."""
        async with self._lock:
            await self._handle(self.lease_check())
            updates = await asyncio.to_thread(self.executor.poll)
            for u in updates:
                event: Event
                if u.launch_failed:
                    sid = self.stimulus_id("launch")
                    event = LaunchFailed(sid, u.job_id, u.attempt, u.message, self.clock_ms())
                else:
                    sid = self.stimulus_id("poll")
                    event = ExecutorReported(
                        sid, u.job_id, u.attempt, u.state, u.exit_code, u.message, self.clock_ms()
                    )
                await self._handle(event)

    async def run_loops(self, stop: asyncio.Event, *, poll_interval_s: float) -> None:
        """Poll the executor and check the lease until `stop` is set."""
        while not stop.is_set():
            try:
                await self.poll_executor()
                await self.handle(self.lease_check())
            except Exception:
                log.exception("executor poll failed; retrying")
            await wait_or_stop(stop, poll_interval_s)

    def usage(self) -> list[Usage]:
        """Resources held by attempts that have not finished."""
        return [
            Usage(
                r.spec.resources.accelerator,
                r.spec.accelerators_total,
                r.spec.cpu_cores_total,
                r.spec.memory_gb_total,
            )
            for r in self.state.active()
            if r.spec is not None and r.phase is not Phase.EXPORTING
        ]

    async def capacity(
        self, source: CapacitySource, energy: EnergyFeed | None = None
    ) -> CapacityReport:
        """What to advertise now: the probe, plus own usage, with nothing allocatable if drained,
        and the live price and carbon if the site has a feed."""
        snap = await asyncio.to_thread(source.probe)
        usage = self.usage()
        if not source.tracks_usage:
            snap = apply_usage(snap, usage)
        snap = mark_federation(snap, usage)
        if energy is not None:
            snap = with_energy(snap, energy.current())
        return apply_drain(snap) if self.state.drained else snap


MAX_REASON_CHARS = 1000


def launch_failure_message(exc: BaseException) -> str:
    """One line saying why a launch failed: the executor's own message, or the exception's."""
    if isinstance(exc, ExecutorError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"cannot start the attempt: {exc.strerror}"
    else:
        text = f"cannot start the attempt: {type(exc).__name__}: {exc}"
    line = " ".join(text.split()) or type(exc).__name__
    # Keep reasons printable and short whatever the exception held (NUL bytes, huge strings).
    line = line.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def jittered(seconds: float, rng: random.Random, spread: float = 0.2) -> float:
    """`seconds` ± `spread` (a fraction), so many agents do not beat in step."""
    return seconds * rng.uniform(1.0 - spread, 1.0 + spread)

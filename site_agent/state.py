"""The agent's pure state machine: events in, instructions out, no I/O and no clock."""

from __future__ import annotations

import logging
from dataclasses import replace

from computenet.types import JobState
from site_agent.events import (
    PERSIST_INSTRUCTIONS,
    AttemptLaunched,
    BrokerAcked,
    CancelReceived,
    CheckpointExported,
    Connected,
    Connecting,
    Disconnected,
    DispatchReceived,
    DrainReceived,
    Event,
    ExecutorReported,
    ExportCheckpoint,
    ForgetAttempt,
    ForgetReport,
    Instruction,
    LaunchFailed,
    LeaseCheck,
    LeaseRenewed,
    PersistAttempt,
    PersistDrain,
    PersistLeaderEpoch,
    PersistReport,
    PublishLease,
    RecoverAttempts,
    RefuseWelcome,
    SendAck,
    SendHello,
    SendReport,
    ShuttingDown,
    StartAttempt,
    Started,
    StopAttempt,
)
from site_agent.records import AttemptKey, AttemptRecord, Exit, Phase, Report, Snapshot

log = logging.getLogger(__name__)

LEASE_EXPIRED = "lease expired"
LEASE_EXPIRED_BEFORE_START = "lease expired: not started"
AGENT_SHUTDOWN = "agent shutdown"
LAUNCH_FAILED_EXIT_CODE = -1
DEFAULT_LEASE_MS = 40_000
DEFAULT_TOMBSTONE_MS = 24 * 3600 * 1000


class AgentState:
    """Decides what the agent does; `handle(event)` returns the instructions to carry out in order.

    Invariants: an attempt is started at most once per (job_id, attempt); every report stays in
    `unacked` until the broker acknowledges its id; reports are sent only while connected and all
    unacknowledged ones are sent again, in id order, after every welcome.

    The lease: it runs from the agent's own (monotonic) send time of the newest heartbeat the
    broker answered, for `lease_ms`. From `stop_lead_ms` before its end the agent stops every
    attempt the broker would requeue, connected or not, and starts nothing new until a renewal of
    a later heartbeat; a renewal never restarts what was stopped. Every event that carries
    `mono_ms` checks the lease first, so an agent waking from a stall stops before it acts.

    Leader epochs: a welcome under a non-zero leader epoch below the highest one welcomed so far
    comes from a deposed leader and is refused (nothing from it counts); a higher one is
    persisted before anything is sent to its broker.
    """

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        *,
        lease_ms: int = DEFAULT_LEASE_MS,
        tombstone_ms: int = DEFAULT_TOMBSTONE_MS,
        stop_lead_ms: int = 0,
    ) -> None:
        snap = snapshot or Snapshot()
        self.attempts: dict[AttemptKey, AttemptRecord] = {r.key: r for r in snap.attempts}
        self.unacked: dict[int, Report] = {r.report_id: r for r in sorted(snap.unacked, key=_rid)}
        self.next_report_id = snap.next_report_id
        self.drained = snap.drained
        self.leader_epoch = snap.leader_epoch
        """The highest leader epoch welcomed so far; a welcome under an older one is refused."""
        self.connected = False
        self.lease_ms = lease_ms
        self.tombstone_ms = tombstone_ms
        self.stop_lead_ms = stop_lead_ms
        self.lease_expiry_mono_ms: int | None = None
        """End of the lease on the agent's monotonic clock; None before any renewal."""
        self.lease_held = False
        """True while the lease covers running work (as of the last event that carried time)."""

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event and return what to do about it."""
        handler = getattr(self, f"_on_{type(event).__name__}")
        instructions: list[Instruction] = handler(event)
        if instructions:
            log.debug(
                "stimulus_id=%s event=%s instructions=%d",
                event.stimulus_id,
                type(event).__name__,
                len(instructions),
            )
        return instructions

    def active(self) -> list[AttemptRecord]:
        """Attempts that have not finished, in (job_id, attempt) order."""
        return [r for k, r in sorted(self.attempts.items()) if not r.is_final]

    # --- connection -------------------------------------------------------------------------

    def _on_Started(self, ev: Started) -> list[Instruction]:
        self.connected = False
        if ev.lease_expiry_mono_ms is not None:
            # an earlier process of this boot left its lease; its watchdogs enforce it too
            self.lease_expiry_mono_ms = ev.lease_expiry_mono_ms
        out: list[Instruction] = []
        if ev.lease_expiry_mono_ms is None and self.active():
            # nothing known: give recovered attempts one lease from now, as a fresh renewal would
            self.lease_expiry_mono_ms = ev.mono_ms + self.lease_ms
            out.append(PublishLease(self.lease_expiry_mono_ms, self._lead_ms()))
        if self.lease_expiry_mono_ms is not None:
            self.lease_held = ev.mono_ms < self._stop_at()
        launched = tuple(r for r in self.active() if r.phase is Phase.LAUNCHED)
        out += [RecoverAttempts(launched)] if launched else []
        out += [StopAttempt(r.key, r.stop_reason) for r in launched if r.stop_reason]
        out += self._check_lease(ev.mono_ms, ev.now_ms)
        # an export cut short by a restart is done again (it replaces whatever it left)
        out += [ExportCheckpoint(r.key) for r in self.active() if r.phase is Phase.EXPORTING]
        out += [StartAttempt(r) for r in self.active() if r.phase is Phase.ACCEPTED]
        return _persist_first(out)

    def _on_Connecting(self, ev: Connecting) -> list[Instruction]:
        self.connected = False
        listed = [
            (r.job_id, r.attempt, _status_of(r))
            for _, r in sorted(self.attempts.items())
            if not r.final_acked
        ]
        return [SendHello(tuple(listed))]

    def _on_Connected(self, ev: Connected) -> list[Instruction]:
        if not admits_leader_epoch(self.leader_epoch, ev.leader_epoch):
            # nothing from this stream counts: no lease, no reports sent to a deposed leader
            self.connected = False
            return [RefuseWelcome(ev.leader_epoch, self.leader_epoch)]
        self.connected = True
        out: list[Instruction] = []
        if ev.leader_epoch > self.leader_epoch:
            self.leader_epoch = ev.leader_epoch
            out.append(PersistLeaderEpoch(ev.leader_epoch))
        if ev.lease_ms > 0:
            self.lease_ms = ev.lease_ms
        return [*out, *(SendReport(r) for r in self.unacked.values())]

    def _on_Disconnected(self, ev: Disconnected) -> list[Instruction]:
        # the lease, not the stream, decides what keeps running: a one-way partition can keep
        # the stream up, and a broken stream may come back before the lease ends
        self.connected = False
        return []

    # --- deliveries from the broker -----------------------------------------------------------

    def _on_DispatchReceived(self, ev: DispatchReceived) -> list[Instruction]:
        ack = SendAck(ev.delivery_id)
        if (ev.job_id, ev.attempt) in self.attempts or self._fenced_off(ev):
            return [ack]
        record = AttemptRecord(
            job_id=ev.job_id,
            attempt=ev.attempt,
            fencing_token=ev.fencing_token,
            tenant=ev.tenant,
            spec=ev.spec,
            restore_ref=ev.restore_ref,
        )
        if ev.spec is None:
            message = f"invalid spec: {ev.invalid_reason}"
            final = self._finish(
                record,
                JobState.FAILED,
                LAUNCH_FAILED_EXIT_CODE,
                message,
                ev.now_ms,
                launch_failed=True,
            )
            return _persist_first(final, ack)
        if not self.lease_held and record.requeues_on_site_loss:
            # read after the lease ran out (e.g. buffered during a stall): the broker has
            # requeued it or will; cancelled here sends it back to the queue at once
            final = self._finish(
                record, JobState.CANCELLED, 0, LEASE_EXPIRED_BEFORE_START, ev.now_ms
            )
            return _persist_first(final, ack)
        self.attempts[record.key] = record
        out: list[Instruction] = [PersistAttempt(record)]
        stops: list[Instruction] = []
        for old in self.active():
            if (
                old.job_id == ev.job_id
                and old.fencing_token < ev.fencing_token
                and old is not record
            ):
                stops += self._stop(old, f"superseded by attempt {ev.attempt}", ev.now_ms)
        return _persist_first([*out, *stops, StartAttempt(record)], ack)

    def _fenced_off(self, ev: DispatchReceived) -> bool:
        return any(
            r.job_id == ev.job_id and r.fencing_token > ev.fencing_token
            for r in self.attempts.values()
        )

    def _on_CancelReceived(self, ev: CancelReceived) -> list[Instruction]:
        ack = SendAck(ev.delivery_id)
        reason = ev.reason or "cancelled"
        record = self.attempts.get((ev.job_id, ev.attempt))
        if record is None:
            unknown = AttemptRecord(job_id=ev.job_id, attempt=ev.attempt, fencing_token=0)
            message = f"unknown attempt: {reason}"
            final = self._finish(unknown, JobState.CANCELLED, 0, message, ev.now_ms)
            return _persist_first(final, ack)
        if record.is_final or record.stop_reason:
            return [ack]
        # only the broker's checkpoint stop exports: it means to resume the job elsewhere
        stop = self._stop(record, reason, ev.now_ms, checkpoint=ev.checkpoint, export=ev.checkpoint)
        return _persist_first(stop, ack)

    def _on_DrainReceived(self, ev: DrainReceived) -> list[Instruction]:
        if ev.drain == self.drained:
            return [SendAck(ev.delivery_id)]
        self.drained = ev.drain
        return [PersistDrain(ev.drain), SendAck(ev.delivery_id)]

    def _on_BrokerAcked(self, ev: BrokerAcked) -> list[Instruction]:
        report = self.unacked.pop(ev.report_id, None)
        if report is None:
            return []
        out: list[Instruction] = [ForgetReport(ev.report_id)]
        record = self.attempts.get((report.job_id, report.attempt))
        if record is not None and record.is_final and record.reported == report.state:
            out.append(PersistAttempt(self._put(replace(record, final_acked=True))))
        return out

    # --- executor -----------------------------------------------------------------------------

    def _on_AttemptLaunched(self, ev: AttemptLaunched) -> list[Instruction]:
        record = self.attempts.get((ev.job_id, ev.attempt))
        if record is None or record.phase is not Phase.ACCEPTED:
            return []
        return [PersistAttempt(self._put(replace(record, phase=Phase.LAUNCHED, handle=ev.handle)))]

    def _on_LaunchFailed(self, ev: LaunchFailed) -> list[Instruction]:
        record = self.attempts.get((ev.job_id, ev.attempt))
        if record is None or record.is_final or record.phase is Phase.EXPORTING:
            return []
        return self._finish(
            record,
            JobState.FAILED,
            LAUNCH_FAILED_EXIT_CODE,
            ev.message,
            ev.now_ms,
            launch_failed=True,
        )

    def _on_ExecutorReported(self, ev: ExecutorReported) -> list[Instruction]:
        record = self.attempts.get((ev.job_id, ev.attempt))
        if record is None or record.is_final or record.phase is Phase.EXPORTING:
            return []
        if ev.state is JobState.RUNNING:
            if record.reported is JobState.RUNNING:
                return []
            running = self._put(replace(record, phase=Phase.LAUNCHED, reported=JobState.RUNNING))
            return [PersistAttempt(running), *self._report(running, ev.now_ms, ev.message)]
        state, message = ev.state, ev.message
        if record.stop_reason and state is not JobState.SUCCEEDED:
            state = JobState.CANCELLED
            message = record.stop_reason
        if record.stop_checkpoint and state is JobState.CANCELLED:
            # the final report waits for the export, so it can say where the checkpoint went
            ended = Exit(state, ev.exit_code, message)
            exporting = self._put(replace(record, phase=Phase.EXPORTING, ended=ended))
            return [PersistAttempt(exporting), ExportCheckpoint(record.key)]
        return self._finish(record, state, ev.exit_code, message, ev.now_ms)

    def _on_CheckpointExported(self, ev: CheckpointExported) -> list[Instruction]:
        record = self.attempts.get((ev.job_id, ev.attempt))
        if record is None or record.phase is not Phase.EXPORTING or record.ended is None:
            return []
        done = record.ended
        return self._finish(
            record,
            done.state,
            done.exit_code,
            done.message,
            ev.now_ms,
            checkpoint=(ev.ref, ev.size_bytes if ev.ref else 0),
        )

    def _on_LeaseRenewed(self, ev: LeaseRenewed) -> list[Instruction]:
        out = self._check_lease(ev.mono_ms, ev.now_ms)
        if ev.lease_ms > 0:
            self.lease_ms = ev.lease_ms
        expiry = ev.sent_mono_ms + self.lease_ms
        current = self.lease_expiry_mono_ms
        if expiry <= ev.mono_ms or (current is not None and expiry <= current):
            # e.g. the answer to a heartbeat sent before a stall: its lease is already over
            return _persist_first(out)
        self.lease_expiry_mono_ms = expiry
        self.lease_held = ev.mono_ms < self._stop_at()
        return _persist_first([*out, PublishLease(expiry, self._lead_ms())])

    def _on_LeaseCheck(self, ev: LeaseCheck) -> list[Instruction]:
        out = self._check_lease(ev.mono_ms, ev.now_ms)
        for key, record in sorted(self.attempts.items()):
            if record.final_acked and ev.now_ms - record.finished_unix_ms >= self.tombstone_ms:
                del self.attempts[key]
                out.append(ForgetAttempt(key))
        return _persist_first(out)

    def _on_ShuttingDown(self, ev: ShuttingDown) -> list[Instruction]:
        self.connected = False
        out: list[Instruction] = []
        if ev.stop_attempts:
            for record in self.active():
                if not record.stop_reason and record.phase is Phase.LAUNCHED:
                    out += self._stop(record, AGENT_SHUTDOWN, 0)
        return _persist_first(out)

    # --- helpers ------------------------------------------------------------------------------

    def _lead_ms(self) -> int:
        # a short lease keeps three quarters of itself for running work
        return min(self.stop_lead_ms, self.lease_ms // 4)

    def _stop_at(self) -> int:
        assert self.lease_expiry_mono_ms is not None
        return self.lease_expiry_mono_ms - self._lead_ms()

    def _check_lease(self, mono_ms: int, now_ms: int) -> list[Instruction]:
        """Stop every requeue attempt once the lease (less the stop lead) has run out."""
        if self.lease_expiry_mono_ms is None or mono_ms < self._stop_at():
            return []
        if self.lease_held:
            log.warning(
                "lease expired expiry_mono_ms=%d mono_ms=%d connected=%s",
                self.lease_expiry_mono_ms,
                mono_ms,
                self.connected,
            )
        self.lease_held = False
        out: list[Instruction] = []
        for record in self.active():
            if record.requeues_on_site_loss and not record.stop_reason:
                out += self._stop(record, LEASE_EXPIRED, now_ms, checkpoint=True)
        return out

    def _put(self, record: AttemptRecord) -> AttemptRecord:
        self.attempts[record.key] = record
        return record

    def _stop(
        self,
        record: AttemptRecord,
        reason: str,
        now_ms: int,
        *,
        checkpoint: bool = False,
        export: bool = False,
    ) -> list[Instruction]:
        """Stop an attempt; `checkpoint` gives the job its checkpoint grace, `export` also
        exports the checkpoint before the final report (which then says where it went)."""
        if record.phase is Phase.ACCEPTED:
            return self._finish(record, JobState.CANCELLED, 0, reason, now_ms)
        if record.phase is Phase.EXPORTING:
            return []  # it has ended already; only its final report is still to come
        stopping = self._put(replace(record, stop_reason=reason, stop_checkpoint=export))
        return [PersistAttempt(stopping), StopAttempt(record.key, reason, checkpoint)]

    def _finish(
        self,
        record: AttemptRecord,
        state: JobState,
        exit_code: int,
        message: str,
        now_ms: int,
        *,
        launch_failed: bool = False,
        checkpoint: tuple[str, int] = ("", 0),
    ) -> list[Instruction]:
        final = self._put(
            replace(record, phase=Phase.FINAL, reported=state, finished_unix_ms=now_ms, ended=None)
        )
        report = self._report(
            final, now_ms, message, exit_code, launch_failed=launch_failed, checkpoint=checkpoint
        )
        return [PersistAttempt(final), *report]

    def _report(
        self,
        record: AttemptRecord,
        now_ms: int,
        message: str,
        exit_code: int = 0,
        *,
        launch_failed: bool = False,
        checkpoint: tuple[str, int] = ("", 0),
    ) -> list[Instruction]:
        assert record.reported is not None
        report = Report(
            report_id=self.next_report_id,
            job_id=record.job_id,
            attempt=record.attempt,
            fencing_token=record.fencing_token,
            state=record.reported,
            exit_code=exit_code,
            message=message,
            time_unix_ms=now_ms,
            launch_failed=launch_failed,
            checkpoint_ref=checkpoint[0],
            checkpoint_bytes=checkpoint[1],
        )
        self.next_report_id += 1
        self.unacked[report.report_id] = report
        out: list[Instruction] = [PersistReport(report)]
        if self.connected:
            out.append(SendReport(report))
        return out


def admits_leader_epoch(highest: int, offered: int) -> bool:
    """Whether a welcome under leader epoch `offered` may be acted on, `highest` seen before.

    Epoch 0 is a single broker without elections and is always admitted; a lower non-zero epoch
    is a leader that has been replaced, whose dispatches and renewals must not count.
    """
    return offered == 0 or offered >= highest


def _rid(report: Report) -> int:
    return report.report_id


def _status_of(record: AttemptRecord) -> JobState:
    if record.reported is not None:
        return record.reported
    return JobState.DISPATCHED


_PERSIST = PERSIST_INSTRUCTIONS


def _persist_first(
    instructions: list[Instruction], ack: SendAck | None = None
) -> list[Instruction]:
    """Journal writes first, then the delivery's ack, then sends and executor calls (in order)."""
    persist = [i for i in instructions if isinstance(i, _PERSIST)]
    rest = [i for i in instructions if not isinstance(i, _PERSIST)]
    return [*persist, *([ack] if ack else []), *rest]

"""The agent-broker Connect stream on the wire, to and from `computenet.site_messages`."""

from __future__ import annotations

from computenet.convert.enums import state_from_proto, state_to_proto
from computenet.convert.sites import capacity_report_from_proto, capacity_report_to_proto
from computenet.convert.spec import spec_from_proto, spec_to_proto
from computenet.errors import SpecError
from computenet.site_messages import (
    Ack,
    AgentMessage,
    AttemptStatus,
    BrokerMessage,
    CancelAttempt,
    Dispatch,
    Drain,
    Heartbeat,
    Hello,
    JobEventReport,
    LeaseRenewal,
    UnreadableDispatch,
    Welcome,
)
from computenet.types import CapacityReport, JobId, JobState, SiteId, TenantId
from computenet.v1 import site_service_pb2 as pb
from computenet.v1 import types_pb2


def _state_to_proto(state: JobState | None) -> types_pb2.JobState.ValueType:
    return types_pb2.JOB_STATE_UNSPECIFIED if state is None else state_to_proto(state)


def attempt_status_to_proto(status: AttemptStatus) -> pb.AttemptStatus:
    """Domain attempt status (of a hello) to the wire."""
    return pb.AttemptStatus(
        job_id=status.job_id, attempt=status.attempt, state=_state_to_proto(status.state)
    )


def attempt_status_from_proto(msg: pb.AttemptStatus) -> AttemptStatus:
    """Wire attempt status (of a hello) to the domain."""
    return AttemptStatus(JobId(msg.job_id), msg.attempt, state_from_proto(msg.state))


def hello_to_proto(hello: Hello) -> pb.Hello:
    """Domain hello to the wire."""
    return pb.Hello(
        site_id=hello.site_id,
        agent_version=hello.agent_version,
        epoch=hello.epoch,
        executor=hello.executor,
        attempts=[attempt_status_to_proto(a) for a in hello.attempts],
        heartbeat_sequence=hello.heartbeat_sequence,
        checkpoints=hello.checkpoints,
    )


def hello_from_proto(msg: pb.Hello) -> Hello:
    """Wire hello to the domain."""
    return Hello(
        site_id=SiteId(msg.site_id),
        agent_version=msg.agent_version,
        epoch=msg.epoch,
        executor=msg.executor,
        attempts=tuple(attempt_status_from_proto(a) for a in msg.attempts),
        heartbeat_sequence=msg.heartbeat_sequence,
        checkpoints=msg.checkpoints,
    )


def heartbeat_to_proto(beat: Heartbeat) -> pb.Heartbeat:
    """Domain heartbeat to the wire."""
    if beat.capacity is None:
        return pb.Heartbeat(sequence=beat.sequence, capacity_error=beat.capacity_error)
    # set through the constructor: an all-default report is still present on the wire
    return pb.Heartbeat(
        sequence=beat.sequence,
        capacity=capacity_report_to_proto(beat.capacity),
        capacity_error=beat.capacity_error,
    )


def heartbeat_from_proto(msg: pb.Heartbeat) -> Heartbeat:
    """Wire heartbeat to the domain; capacity is None unless the message carries one."""
    capacity = capacity_report_from_proto(msg.capacity) if msg.HasField("capacity") else None
    return Heartbeat(msg.sequence, capacity, msg.capacity_error)


def lease_renewal_to_proto(renewal: LeaseRenewal) -> pb.LeaseRenewal:
    """Domain lease renewal to the wire."""
    return pb.LeaseRenewal(heartbeat_sequence=renewal.heartbeat_sequence, lease_s=renewal.lease_s)


def lease_renewal_from_proto(msg: pb.LeaseRenewal) -> LeaseRenewal:
    """Wire lease renewal to the domain."""
    return LeaseRenewal(msg.heartbeat_sequence, msg.lease_s)


def job_event_report_to_proto(report: JobEventReport) -> pb.JobEventReport:
    """Domain job event report to the wire."""
    return pb.JobEventReport(
        report_id=report.report_id,
        job_id=report.job_id,
        attempt=report.attempt,
        fencing_token=report.fencing_token,
        state=_state_to_proto(report.state),
        exit_code=report.exit_code,
        message=report.message,
        time_unix_ms=report.time_unix_ms,
        launch_failed=report.launch_failed,
        checkpoint_ref=report.checkpoint_ref,
        checkpoint_bytes=report.checkpoint_bytes,
    )


def job_event_report_from_proto(msg: pb.JobEventReport) -> JobEventReport:
    """Wire job event report to the domain."""
    return JobEventReport(
        report_id=msg.report_id,
        job_id=JobId(msg.job_id),
        attempt=msg.attempt,
        fencing_token=msg.fencing_token,
        state=state_from_proto(msg.state),
        exit_code=msg.exit_code,
        message=msg.message,
        time_unix_ms=msg.time_unix_ms,
        launch_failed=msg.launch_failed,
        checkpoint_ref=msg.checkpoint_ref,
        checkpoint_bytes=msg.checkpoint_bytes,
    )


def ack_to_proto(ack: Ack) -> pb.Ack:
    """Domain acknowledgement to the wire."""
    return pb.Ack(id=ack.id)


def ack_from_proto(msg: pb.Ack) -> Ack:
    """Wire acknowledgement to the domain."""
    return Ack(msg.id)


def welcome_to_proto(welcome: Welcome) -> pb.Welcome:
    """Domain welcome to the wire."""
    return pb.Welcome(
        broker_epoch=welcome.broker_epoch,
        heartbeat_interval_s=welcome.heartbeat_interval_s,
        lease_s=welcome.lease_s,
        heartbeat_sequence=welcome.heartbeat_sequence,
        leader_epoch=welcome.leader_epoch,
    )


def welcome_from_proto(msg: pb.Welcome) -> Welcome:
    """Wire welcome to the domain."""
    return Welcome(
        msg.broker_epoch,
        msg.heartbeat_interval_s,
        msg.lease_s,
        msg.heartbeat_sequence,
        msg.leader_epoch,
    )


def dispatch_to_proto(dispatch: Dispatch) -> pb.Dispatch:
    """Domain dispatch to the wire."""
    return pb.Dispatch(
        delivery_id=dispatch.delivery_id,
        job_id=dispatch.job_id,
        attempt=dispatch.attempt,
        fencing_token=dispatch.fencing_token,
        spec=spec_to_proto(dispatch.spec),
        tenant=dispatch.tenant,
        pool=dispatch.pool,
        restore_ref=dispatch.restore_ref,
    )


def dispatch_from_proto(msg: pb.Dispatch) -> Dispatch | UnreadableDispatch:
    """Wire dispatch to the domain; one whose spec does not decode says why, for its refusal."""
    job_id, tenant = JobId(msg.job_id), TenantId(msg.tenant)
    try:
        spec = spec_from_proto(msg.spec)
    except SpecError as exc:
        return UnreadableDispatch(
            msg.delivery_id, job_id, msg.attempt, msg.fencing_token, tenant, str(exc)
        )
    return Dispatch(
        msg.delivery_id,
        job_id,
        msg.attempt,
        msg.fencing_token,
        spec,
        tenant,
        msg.pool,
        msg.restore_ref,
    )


def cancel_attempt_to_proto(cancel: CancelAttempt) -> pb.CancelAttempt:
    """Domain cancel to the wire."""
    return pb.CancelAttempt(
        delivery_id=cancel.delivery_id,
        job_id=cancel.job_id,
        attempt=cancel.attempt,
        reason=cancel.reason,
        checkpoint=cancel.checkpoint,
    )


def cancel_attempt_from_proto(msg: pb.CancelAttempt) -> CancelAttempt:
    """Wire cancel to the domain."""
    return CancelAttempt(
        msg.delivery_id, JobId(msg.job_id), msg.attempt, msg.reason, msg.checkpoint
    )


def drain_to_proto(drain: Drain) -> pb.Drain:
    """Domain drain to the wire."""
    return pb.Drain(delivery_id=drain.delivery_id, drain=drain.drain)


def drain_from_proto(msg: pb.Drain) -> Drain:
    """Wire drain to the domain."""
    return Drain(msg.delivery_id, msg.drain)


def connect_request_to_proto(message: AgentMessage) -> pb.ConnectRequest:
    """What an agent sends, as the stream's request message."""
    if isinstance(message, Hello):
        return pb.ConnectRequest(hello=hello_to_proto(message))
    if isinstance(message, Heartbeat):
        return pb.ConnectRequest(heartbeat=heartbeat_to_proto(message))
    if isinstance(message, CapacityReport):
        return pb.ConnectRequest(capacity=capacity_report_to_proto(message))
    if isinstance(message, JobEventReport):
        return pb.ConnectRequest(job_event=job_event_report_to_proto(message))
    return pb.ConnectRequest(ack=ack_to_proto(message))


def connect_request_from_proto(msg: pb.ConnectRequest) -> AgentMessage | None:
    """The stream's request message as what the agent sent; None if it carries nothing known."""
    kind = msg.WhichOneof("msg")
    if kind == "hello":
        return hello_from_proto(msg.hello)
    if kind == "heartbeat":
        return heartbeat_from_proto(msg.heartbeat)
    if kind == "capacity":
        return capacity_report_from_proto(msg.capacity)
    if kind == "job_event":
        return job_event_report_from_proto(msg.job_event)
    if kind == "ack":
        return ack_from_proto(msg.ack)
    return None


def connect_response_to_proto(message: BrokerMessage) -> pb.ConnectResponse:
    """What a broker sends, as the stream's response message."""
    if isinstance(message, Welcome):
        return pb.ConnectResponse(welcome=welcome_to_proto(message))
    if isinstance(message, LeaseRenewal):
        return pb.ConnectResponse(lease=lease_renewal_to_proto(message))
    if isinstance(message, Dispatch):
        return pb.ConnectResponse(dispatch=dispatch_to_proto(message))
    if isinstance(message, CancelAttempt):
        return pb.ConnectResponse(cancel=cancel_attempt_to_proto(message))
    if isinstance(message, Drain):
        return pb.ConnectResponse(drain=drain_to_proto(message))
    return pb.ConnectResponse(ack=ack_to_proto(message))


def connect_response_from_proto(
    msg: pb.ConnectResponse,
) -> BrokerMessage | UnreadableDispatch | None:
    """The stream's response message as what the broker sent; None if it carries nothing known."""
    kind = msg.WhichOneof("msg")
    if kind == "welcome":
        return welcome_from_proto(msg.welcome)
    if kind == "lease":
        return lease_renewal_from_proto(msg.lease)
    if kind == "dispatch":
        return dispatch_from_proto(msg.dispatch)
    if kind == "cancel":
        return cancel_attempt_from_proto(msg.cancel)
    if kind == "drain":
        return drain_from_proto(msg.drain)
    if kind == "ack":
        return ack_from_proto(msg.ack)
    return None

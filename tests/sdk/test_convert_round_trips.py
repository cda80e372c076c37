"""Every wire conversion pair round-trips its domain objects: x_from_proto(x_to_proto(x)) == x."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computenet import convert
from computenet.rebalance_types import MoveKind
from computenet.site_messages import UnreadableDispatch
from computenet.types import JobKind, JobState, SiteLossPolicy, SiteStatus
from computenet.v1 import site_service_pb2 as site_pb
from tests.sdk import wire_strategies as ws

PAIRS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], Any], Callable[[Any], Any]]] = [
    ("spec", ws.specs(), convert.spec_to_proto, convert.spec_from_proto),
    ("job", ws.jobs(), convert.job_to_proto, convert.job_from_proto),
    ("event", ws.events(), convert.event_to_proto, convert.event_from_proto),
    ("candidate", ws.CANDIDATES, convert.candidate_to_proto, convert.candidate_from_proto),
    ("placement", ws.PLACEMENTS, convert.placement_to_proto, convert.placement_from_proto),
    ("pool", ws.POOLS, convert.pool_to_proto, convert.pool_from_proto),
    ("site", ws.SITES, convert.site_to_proto, convert.site_from_proto),
    (
        "capacity_report",
        ws.CAPACITY_REPORTS,
        convert.capacity_report_to_proto,
        convert.capacity_report_from_proto,
    ),
    (
        "user_region",
        ws.USER_REGIONS,
        convert.user_region_to_proto,
        convert.user_region_from_proto,
    ),
    ("link", ws.LINKS, convert.link_to_proto, convert.link_from_proto),
    (
        "attempt_status",
        ws.ATTEMPT_STATUSES,
        convert.attempt_status_to_proto,
        convert.attempt_status_from_proto,
    ),
    ("hello", ws.HELLOS, convert.hello_to_proto, convert.hello_from_proto),
    (
        "job_event_report",
        ws.JOB_EVENT_REPORTS,
        convert.job_event_report_to_proto,
        convert.job_event_report_from_proto,
    ),
    ("ack", ws.ACKS, convert.ack_to_proto, convert.ack_from_proto),
    ("welcome", ws.WELCOMES, convert.welcome_to_proto, convert.welcome_from_proto),
    ("dispatch", ws.DISPATCHES, convert.dispatch_to_proto, convert.dispatch_from_proto),
    (
        "cancel_attempt",
        ws.CANCELS,
        convert.cancel_attempt_to_proto,
        convert.cancel_attempt_from_proto,
    ),
    ("drain", ws.DRAINS, convert.drain_to_proto, convert.drain_from_proto),
    ("heartbeat", ws.HEARTBEATS, convert.heartbeat_to_proto, convert.heartbeat_from_proto),
    (
        "lease_renewal",
        ws.LEASE_RENEWALS,
        convert.lease_renewal_to_proto,
        convert.lease_renewal_from_proto,
    ),
    (
        "connect_request",
        st.one_of(ws.HELLOS, ws.HEARTBEATS, ws.CAPACITY_REPORTS, ws.JOB_EVENT_REPORTS, ws.ACKS),
        convert.connect_request_to_proto,
        convert.connect_request_from_proto,
    ),
    (
        "connect_response",
        st.one_of(ws.WELCOMES, ws.LEASE_RENEWALS, ws.DISPATCHES, ws.CANCELS, ws.DRAINS, ws.ACKS),
        convert.connect_response_to_proto,
        convert.connect_response_from_proto,
    ),
    ("move", ws.MOVES, convert.move_to_proto, convert.move_from_proto),
    ("rebalance_run", ws.RUNS, convert.rebalance_run_to_proto, convert.rebalance_run_from_proto),
    (
        "rebalance_run_page",
        ws.RUN_PAGES,
        convert.rebalance_run_page_to_proto,
        convert.rebalance_run_page_from_proto,
    ),
]


@pytest.mark.parametrize(
    ("strategy", "to_proto", "from_proto"),
    [pytest.param(s, t, f, id=name) for name, s, t, f in PAIRS],
)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_domain_objects_round_trip_through_the_wire(
    strategy: st.SearchStrategy[Any],
    to_proto: Callable[[Any], Any],
    from_proto: Callable[[Any], Any],
    data: st.DataObject,
) -> None:
    value = data.draw(strategy)
    message = to_proto(value)
    assert from_proto(message) == value
    again = type(message).FromString(message.SerializeToString())
    assert from_proto(again) == value, "the bytes on the wire carry it too"


ENUMS: list[tuple[type[Any], Callable[[Any], int], Callable[[int], Any]]] = [
    (JobKind, convert.kind_to_proto, convert.kind_from_proto),
    (JobState, convert.state_to_proto, convert.state_from_proto),
    (SiteStatus, convert.site_status_to_proto, convert.site_status_from_proto),
    (SiteLossPolicy, convert.site_loss_policy_to_proto, convert.site_loss_policy_from_proto),
    (MoveKind, convert.move_kind_to_proto, convert.move_kind_from_proto),
]


@pytest.mark.parametrize(
    ("enum", "to_proto", "from_proto"),
    [pytest.param(e, t, f, id=e.__name__) for e, t, f in ENUMS],
)
def test_every_enum_value_round_trips_and_unknown_ones_read_as_none(
    enum: type[Any], to_proto: Callable[[Any], int], from_proto: Callable[[int], Any]
) -> None:
    assert [from_proto(to_proto(member)) for member in enum] == list(enum)
    assert len({to_proto(member) for member in enum}) == len(enum)
    assert from_proto(0) is None, "UNSPECIFIED"
    assert from_proto(999) is None


def test_a_dispatch_whose_spec_does_not_decode_is_unreadable_with_the_reason() -> None:
    msg = site_pb.Dispatch(delivery_id=4, job_id="j", attempt=2, fencing_token=2, tenant="t")
    decoded = convert.dispatch_from_proto(msg)
    assert isinstance(decoded, UnreadableDispatch)
    assert (decoded.delivery_id, decoded.job_id, decoded.attempt, decoded.tenant) == (
        4,
        "j",
        2,
        "t",
    )
    assert "spec.name" in decoded.reason


def test_stream_messages_carrying_nothing_known_decode_to_none() -> None:
    assert convert.connect_request_from_proto(site_pb.ConnectRequest()) is None
    assert convert.connect_response_from_proto(site_pb.ConnectResponse()) is None

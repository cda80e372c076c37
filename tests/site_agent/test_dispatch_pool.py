"""A dispatch names the pool the broker's ledger holds the cards in; the agent runs it there."""

from __future__ import annotations

from computenet.convert import dispatch_from_proto, dispatch_to_proto
from computenet.site_messages import Dispatch
from computenet.types import JobId, TenantId
from site_agent.events import DispatchReceived
from site_agent.link import dispatch_received
from tests.site_agent.helpers import make_spec


def _received(pool: str, **resources: object) -> DispatchReceived:
    """A dispatch as the broker sends it, through the wire, as the agent's link receives it."""
    sent = Dispatch(1, JobId("j"), 1, 1, make_spec(**resources), TenantId("t"), pool)
    arrived = dispatch_from_proto(dispatch_to_proto(sent))
    assert isinstance(arrived, Dispatch) and arrived.pool == pool
    return dispatch_received(arrived, "s1", 0)


def test_an_any_model_job_is_pinned_to_the_placed_pool() -> None:
    event = _received("910b", count=8)
    assert event.spec is not None and event.spec.resources.accelerator == "910b"
    assert event.spec.resources.count == 8


def test_a_job_naming_its_model_keeps_it() -> None:
    event = _received("910b", accelerator="a800", count=2)
    assert event.spec is not None and event.spec.resources.accelerator == "a800"


def test_no_pool_leaves_the_spec_as_sent() -> None:
    event = _received("", count=0)
    assert event.spec is not None and event.spec.resources.accelerator == ""

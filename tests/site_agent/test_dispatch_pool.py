"""A dispatch names the pool the broker's ledger holds the cards in; the agent runs it there."""

from __future__ import annotations

from computenet.convert import spec_to_proto
from computenet.v1 import site_service_pb2 as sp
from site_agent.link import dispatch_from_proto
from tests.site_agent.helpers import make_spec


def _dispatch(pool: str, **resources: object) -> sp.Dispatch:
    spec = make_spec(**resources)
    return sp.Dispatch(delivery_id=1, job_id="j", attempt=1, spec=spec_to_proto(spec), pool=pool)


def test_an_any_model_job_is_pinned_to_the_placed_pool() -> None:
    event = dispatch_from_proto(_dispatch("910b", count=8), "s1", 0)
    assert event.spec is not None and event.spec.resources.accelerator == "910b"
    assert event.spec.resources.count == 8


def test_a_job_naming_its_model_keeps_it() -> None:
    event = dispatch_from_proto(_dispatch("910b", accelerator="a800", count=2), "s1", 0)
    assert event.spec is not None and event.spec.resources.accelerator == "a800"


def test_no_pool_leaves_the_spec_as_sent() -> None:
    event = dispatch_from_proto(_dispatch("", count=0), "s1", 0)
    assert event.spec is not None and event.spec.resources.accelerator == ""

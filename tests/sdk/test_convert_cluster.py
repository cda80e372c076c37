"""The cluster status converters round-trip the domain objects, with and without a leader."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from computenet.convert import cluster_status_from_proto, cluster_status_to_proto
from computenet.types import ClusterLeader, ClusterReplica, ClusterStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from tests.sdk.wire_strategies import INT64, UINT64, texts

LEADERS = st.builds(
    ClusterLeader,
    broker_id=texts(),
    address=texts(),
    agent_address=texts(),
    epoch=UINT64,
    since_unix_ms=INT64,
)
REPLICAS = st.builds(
    ClusterReplica,
    broker_id=texts(),
    address=texts(),
    role=st.sampled_from(["leader", "follower"]) | texts(),
    last_seen_unix_ms=INT64,
    agent_address=texts(),
)
STATUSES = st.builds(
    ClusterStatus,
    leader=st.none() | LEADERS,
    replicas=st.lists(REPLICAS, max_size=4).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(status=STATUSES)
def test_cluster_status_round_trips_through_the_wire(status: ClusterStatus) -> None:
    message = cluster_status_to_proto(status)
    assert cluster_status_from_proto(message) == status
    again = fed_pb.GetClusterStatusResponse.FromString(message.SerializeToString())
    assert cluster_status_from_proto(again) == status


def test_a_leader_with_every_field_zero_is_still_a_leader() -> None:
    # Presence, not content, says whether there is a leader: an empty leader message is one.
    status = ClusterStatus(leader=ClusterLeader("", "", "", 0, 0))
    again = fed_pb.GetClusterStatusResponse.FromString(
        cluster_status_to_proto(status).SerializeToString()
    )
    assert cluster_status_from_proto(again).leader == ClusterLeader("", "", "", 0, 0)
    assert cluster_status_from_proto(fed_pb.GetClusterStatusResponse()).leader is None

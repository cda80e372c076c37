"""The broker replicas of a federation and its leader on the wire, to and from the domain."""

from __future__ import annotations

from computenet.types import ClusterLeader, ClusterReplica, ClusterStatus
from computenet.v1 import federation_service_pb2 as fed_pb


def cluster_leader_to_proto(leader: ClusterLeader) -> fed_pb.ClusterLeader:
    """Domain leader to wire leader."""
    return fed_pb.ClusterLeader(
        broker_id=leader.broker_id,
        address=leader.address,
        agent_address=leader.agent_address,
        epoch=leader.epoch,
        since_unix_ms=leader.since_unix_ms,
    )


def cluster_leader_from_proto(msg: fed_pb.ClusterLeader) -> ClusterLeader:
    """Wire leader to domain leader."""
    return ClusterLeader(
        broker_id=msg.broker_id,
        address=msg.address,
        agent_address=msg.agent_address,
        epoch=msg.epoch,
        since_unix_ms=msg.since_unix_ms,
    )


def cluster_replica_to_proto(replica: ClusterReplica) -> fed_pb.ClusterReplica:
    """Domain replica to wire replica."""
    return fed_pb.ClusterReplica(
        broker_id=replica.broker_id,
        address=replica.address,
        role=replica.role,
        last_seen_unix_ms=replica.last_seen_unix_ms,
        agent_address=replica.agent_address,
    )


def cluster_replica_from_proto(msg: fed_pb.ClusterReplica) -> ClusterReplica:
    """Wire replica to domain replica."""
    return ClusterReplica(
        broker_id=msg.broker_id,
        address=msg.address,
        role=msg.role,
        last_seen_unix_ms=msg.last_seen_unix_ms,
        agent_address=msg.agent_address,
    )


def cluster_status_to_proto(status: ClusterStatus) -> fed_pb.GetClusterStatusResponse:
    """Domain cluster status to the GetClusterStatus response (no leader: the field unset)."""
    msg = fed_pb.GetClusterStatusResponse(
        replicas=[cluster_replica_to_proto(r) for r in status.replicas]
    )
    if status.leader is not None:
        msg.leader.CopyFrom(cluster_leader_to_proto(status.leader))
    return msg


def cluster_status_from_proto(msg: fed_pb.GetClusterStatusResponse) -> ClusterStatus:
    """The GetClusterStatus response to the domain cluster status."""
    return ClusterStatus(
        leader=cluster_leader_from_proto(msg.leader) if msg.HasField("leader") else None,
        replicas=tuple(cluster_replica_from_proto(r) for r in msg.replicas),
    )

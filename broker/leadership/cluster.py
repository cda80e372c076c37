"""The cluster's state as the database records it: replicas, roles and the current leader."""

from __future__ import annotations

import time

from broker.store import Coordination
from computenet.types import ClusterLeader, ClusterReplica, ClusterStatus

RECENT_LEASES = 3
"""A replica is listed while its record is younger than this many leader leases."""


def cluster_status(coordination: Coordination, lease_s: float) -> ClusterStatus:
    """Read the leader lease and the recently seen replicas (blocking: run off the loop)."""
    now_ms = int(time.time() * 1000)
    leader = coordination.roster.leader(now_ms)
    recent = coordination.roster.replicas(now_ms - int(RECENT_LEASES * lease_s * 1000))
    replicas = tuple(
        ClusterReplica(
            broker_id=r.broker_id,
            address=r.address,
            role="leader" if leader is not None and r.broker_id == leader.broker_id else "follower",
            last_seen_unix_ms=r.last_seen_unix_ms,
            agent_address=r.agent_address,
        )
        for r in recent
    )
    if leader is None:
        return ClusterStatus(None, replicas)
    return ClusterStatus(
        ClusterLeader(
            broker_id=leader.broker_id,
            address=leader.address,
            agent_address=leader.agent_address,
            epoch=leader.epoch,
            since_unix_ms=leader.since_unix_ms,
        ),
        replicas,
    )

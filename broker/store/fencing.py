"""Named leases with fencing tokens, and the in-transaction check that guards fenced writes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from broker.store.protocol import Fence

lease_metadata = sa.MetaData()

leases = sa.Table(
    "rebalance_leases",
    lease_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("fencing_token", sa.BigInteger, nullable=False),
    sa.Column("expires_unix_ms", sa.BigInteger, nullable=False),
)


def fence_holds(connection: Connection, fence: Fence, now_unix_ms: int) -> bool:
    """True if `fence.token` is still the live token of its lease, read inside the caller's
    transaction (with a shared row lock on PostgreSQL, so a takeover waits for this write)."""
    query = sa.select(leases.c.fencing_token, leases.c.expires_unix_ms).where(
        leases.c.name == fence.lease
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = connection.execute(query).first()
    return row is not None and int(row[0]) == fence.token and int(row[1]) > now_unix_ms

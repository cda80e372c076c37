"""The seam the queue and tenants views read through: what the tenancy core says now.

The leader's placement loop answers it (broker.jobflow.tenant_views.LoopTenancyView): its
rounds order the pending jobs by weighted fair share, admit them by quota and keep the reason
each one still waits.
"""

from __future__ import annotations

from typing import Protocol

from broker.tenancy import QueueEntry, TenantRow


class TenancyView(Protocol):
    """What the queue and tenants views show."""

    async def queue(self) -> list[QueueEntry]:
        """Pending jobs in admission order, each with why it waits."""
        ...

    async def tenants(self) -> list[TenantRow]:
        """Every configured tenant and every tenant holding or having used cards."""
        ...

"""Tenancy: quotas, borrowing, weighted fair share and the choice of preemptions (pure).

Nothing here does I/O: the placement loop's shell (broker.jobflow.tenancy) reads the ledger
and the pending queue, asks these functions, and carries out what they decide.
"""

from broker.tenancy.admission import (
    AdmissionKind,
    Admitted,
    FreeCapacity,
    JobDemand,
    Waiting,
    WaitReason,
    admit,
    admit_round,
)
from broker.tenancy.order import dominant_share, pending_order
from broker.tenancy.policy import (
    DEFAULT_PRIORITY_CLASSES,
    FairSharePolicy,
    PreemptionPolicy,
    TenantPolicy,
    TenantsTable,
)
from broker.tenancy.preemption import RunningJob, Victim, choose_preemptions, within_nominal
from broker.tenancy.usage import DecayedUsage, TenantUsage, UsageSnapshot, accrue_card_hours
from broker.tenancy.views import QueueEntry, TenantRow, queue_entries, tenant_rows

__all__ = [
    "DEFAULT_PRIORITY_CLASSES",
    "AdmissionKind",
    "Admitted",
    "DecayedUsage",
    "FairSharePolicy",
    "FreeCapacity",
    "JobDemand",
    "PreemptionPolicy",
    "QueueEntry",
    "RunningJob",
    "TenantPolicy",
    "TenantRow",
    "TenantUsage",
    "TenantsTable",
    "UsageSnapshot",
    "Victim",
    "WaitReason",
    "Waiting",
    "accrue_card_hours",
    "admit",
    "admit_round",
    "choose_preemptions",
    "dominant_share",
    "pending_order",
    "queue_entries",
    "tenant_rows",
    "within_nominal",
]

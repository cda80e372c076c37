"""Realistic inputs for the CLI's tables: long ids, long reasons, several pools and models."""

from __future__ import annotations

from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo
from computenet.spec import JobSpec
from computenet.types import (
    CandidateSite,
    ClusterLeader,
    ClusterReplica,
    ClusterStatus,
    Job,
    JobId,
    JobState,
    Placement,
    PoolCapacity,
    SiteId,
    SiteInfo,
    SiteStatus,
    TenantId,
)
from computenet.usage import (
    QueuedJob,
    TenantModelStatus,
    TenantStatus,
    UsageGroup,
    UsageGrouping,
    UsageReport,
    UsageTotals,
    WaitReason,
)

NOW_MS = 1_780_000_000_000
"""A fixed "now", so ages and times in the snapshots never change."""

JOB_IDS = ("job-39572a0c9e1f4b7d", "job-8d01b2c3d4e5f607", "job-f00dfacecafe1234")
NO_A800 = "no a800 accelerators"
LONG_REASON = (
    "no feasible site (chongqing: gang of 8 a800 needs one pool, 4 free; zhangjiakou: site is "
    "offline; yangtze-demo: site is offline; 7 more)"
)


def _spec(name: str, kind: str = "training") -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": name,
            "kind": kind,
            "resources": {"accelerator": "a800", "count": 8},
            "duration_hours": 12,
            "command": ["python", "train.py"],
        }
    )


def jobs() -> list[Job]:
    """A pending job with a long reason, a running one and a finished one."""
    return [
        Job(JobId(JOB_IDS[0]), TenantId("lab-a"), _spec("pretrain-llama-70b-shard-3"),
            JobState.PENDING, reason=LONG_REASON),
        Job(JobId(JOB_IDS[1]), TenantId("lab-b"), _spec("chat-serving-batch", "batch"),
            JobState.RUNNING, SiteId("yangtze-demo"), 1, pool="h800"),
        Job(JobId(JOB_IDS[2]), TenantId("lab-a"), _spec("nightly-eval", "batch"),
            JobState.SUCCEEDED, SiteId("horinger"), 2, exit_code=0, pool="910b"),
    ]  # fmt: skip


SITE_IDS = ("zhangjiakou", "yangtze-demo", "qingyang")


def sites() -> list[SiteInfo]:
    """An active site with three pools, a stale one, an offline one."""
    return [
        SiteInfo(SiteId("zhangjiakou"), "Zhangjiakou", "Hebei", "east", SiteStatus.ACTIVE,
                 (PoolCapacity("a800", 512, 500, 120, 80, 16), PoolCapacity("h20", 1024, 1024),
                  PoolCapacity("910b", 512, 512, 500)),
                 cpu_cores=4096, memory_gb=32768, last_report_unix_ms=NOW_MS - 4_000,
                 running_jobs=17, executor="slurm", agent_version="0.9.0"),
        SiteInfo(SiteId("yangtze-demo"), "Yangtze demo", "Shanghai", "east", SiteStatus.ACTIVE,
                 (PoolCapacity("h800", 256, 256, 64),), last_report_unix_ms=NOW_MS - 95_000,
                 running_jobs=3, executor="local", agent_version="0.9.0", capacity_stale=True,
                 capacity_error="nvidia-smi failed"),
        SiteInfo(SiteId("qingyang"), "Qingyang", "Gansu", "west", SiteStatus.OFFLINE),
    ]  # fmt: skip


def placement() -> Placement:
    """A plan with a feasible site, two infeasible ones and every cost term."""
    terms = {"energy": 1843.2, "carbon": 311.9, "data_movement": 120.0, "queue_wait": 0.0,
             "reliability": 14.7, "latency": 0.0}  # fmt: skip
    return Placement(
        chosen=SiteId("horinger"),
        candidates=(
            CandidateSite(SiteId("horinger"), True, "", terms, 2289.8, "a800", 12.0),
            CandidateSite(SiteId("zhangjiakou"), True, "", {**terms, "energy": 2633.1}, 3079.7,
                          "a800", 12.0),
            CandidateSite(SiteId("qingyang"), False, NO_A800),
            CandidateSite(SiteId("yangtze-demo"), False,
                          "gang of 8 a800 needs one pool with 8 free cards, the largest has 4"),
        ),
    )  # fmt: skip


def pending_placement() -> Placement:
    """A live plan of a pending job: nothing fits."""
    return Placement(
        chosen=None,
        candidates=(
            CandidateSite(SiteId("zhangjiakou"), False, "gang of 8 a800 needs one pool, 4 free"),
            CandidateSite(SiteId("qingyang"), False, NO_A800),
            CandidateSite(SiteId("yangtze-demo"), False, "site is offline"),
        ),
    )


def cluster() -> ClusterStatus:
    """A leader and a follower with long ids and both addresses."""
    return ClusterStatus(
        leader=ClusterLeader("broker-7f3a9c21d0e4", "10.20.30.41:50051", "10.20.30.41:50052",
                             12, NOW_MS - 7_200_000),
        replicas=(
            ClusterReplica("broker-7f3a9c21d0e4", "10.20.30.41:50051", "leader", NOW_MS - 2_000,
                           "10.20.30.41:50052"),
            ClusterReplica("broker-0b8e55d1a9c7", "10.20.30.42:50051", "follower",
                           NOW_MS - 300_000, "10.20.30.42:50052"),
        ),
    )  # fmt: skip


RUN_IDS = ("run-5c2b9e0d7a1f4e33", "run-0a9d8c7b6e5f4d21")


def runs() -> list[RebalanceRunInfo]:
    """An applied run with a failed move, and a dry run."""
    moves = (
        RebalanceMove(JOB_IDS[0], MoveKind.MIGRATE, "zhangjiakou", "horinger", 5120.0, 310.5,
                      cost_cny=880.0, applied=True),
        RebalanceMove(JOB_IDS[1], MoveKind.EVACUATE, "yangtze-demo", "qingyang", 900.0, 12.0,
                      cost_cny=300.0, error="site qingyang refused the dispatch: draining"),
    )  # fmt: skip
    return [
        RebalanceRunInfo(RUN_IDS[0], "interval@2026-06-01T08:00:00Z", False, NOW_MS - 60_000,
                         NOW_MS - 57_500, moves, 4840.0),
        RebalanceRunInfo(RUN_IDS[1], "manual", True, NOW_MS - 600_000, NOW_MS - 599_000,
                         moves[:1], 4240.0, errors=("site wuhu unreachable",)),
    ]  # fmt: skip


def usage() -> UsageReport:
    """Usage by site, with a total."""
    big = UsageTotals(12_345.5, 98_765.25, 41_234.5, 456_789.0, 54_321.0)
    small = UsageTotals(12.5, 80.0, 33.3, 450.0, 40.0)
    return UsageReport(
        UsageGrouping.SITE,
        (UsageGroup("zhangjiakou", big), UsageGroup("yangtze-demo", small)),
        UsageTotals(12_358.0, 98_845.25, 41_267.8, 457_239.0, 54_361.0),
        since_day="2026-05-01",
    )


def queue() -> list[QueuedJob]:
    """Two waiting jobs with long reasons."""
    return [
        QueuedJob(1, JOB_IDS[0], "lab-a", "a800", 8, 0, NOW_MS - 3_600_000,
                  WaitReason.NO_CAPACITY, LONG_REASON),
        QueuedJob(2, JOB_IDS[2], "lab-b-with-a-long-tenant-name", "", 0, 5, NOW_MS - 60_000,
                  WaitReason.OVER_QUOTA, "tenant lab-b-with-a-long-tenant-name holds 64 of its "
                  "64 a800 cards and may borrow none"),
    ]  # fmt: skip


def tenants() -> list[TenantStatus]:
    """A configured tenant with two models and an unlisted one."""
    return [
        TenantStatus("lab-a", 2.0, True, (
            TenantModelStatus("a800", 64, 32, 80, 16, 12_345.6),
            TenantModelStatus("910b", 128, None, 0, 0, 0.0),
        ), 0.412),
        TenantStatus("visiting-group-7", 1.0, False, (), 0.0),
    ]  # fmt: skip

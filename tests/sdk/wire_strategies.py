"""Hypothesis strategies of the domain objects that travel on the wire, valid as the domain defines
them and representable on the wire (proto3 reads a zero number as unset where a default exists)."""

from __future__ import annotations

from hypothesis import strategies as st

from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo, RebalanceRunPage
from computenet.site_messages import (
    Ack,
    AttemptStatus,
    CancelAttempt,
    Dispatch,
    Drain,
    Heartbeat,
    Hello,
    JobEventReport,
    LeaseRenewal,
    Welcome,
)
from computenet.spec import (
    WORKLOADS,
    Checkpoint,
    Constraints,
    Dataset,
    InferenceSpec,
    JobSpec,
    RegionDemand,
    Resources,
)
from computenet.types import (
    CandidateSite,
    CapacityReport,
    Job,
    JobEvent,
    JobId,
    JobState,
    Placement,
    PoolCapacity,
    SiteId,
    SiteInfo,
    SiteStatus,
    TenantId,
)
from topology import Link, UserRegion

UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def texts(min_size: int = 0, max_size: int = 16) -> st.SearchStrategy[str]:
    """Strings the wire can carry (valid UTF-8, so no lone surrogates)."""
    return st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)


def names(min_size: int = 0, max_size: int = 16) -> st.SearchStrategy[str]:
    """Names and ids a spec accepts: no control, format (bidi) or line-separator characters."""
    alphabet = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp"))
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def arguments(min_size: int = 1, max_size: int = 32) -> st.SearchStrategy[str]:
    """Command arguments a spec accepts: anything but NUL (tabs and newlines included)."""
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


LABEL_KEYS = st.from_regex(r"\A([a-z0-9]{1,8}(\.[a-z0-9]{1,8})?/)?[^\W_]([\w.-]{0,20}[^\W_])?\Z")


def positive(max_value: float) -> st.SearchStrategy[float]:
    """Floats in (0, max_value]."""
    return st.floats(min_value=0.0, max_value=max_value, exclude_min=True)


IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
JOB_IDS = IDS.map(JobId)
SITE_IDS = IDS.map(SiteId)
TENANTS = IDS.map(TenantId)
STATES = st.sampled_from(JobState)
FINAL_WITH_EXIT_CODE = frozenset({JobState.SUCCEEDED, JobState.FAILED})


@st.composite
def inference_specs(draw: st.DrawFn) -> InferenceSpec:
    """A valid inference section."""
    regions = draw(
        st.lists(
            st.builds(RegionDemand, region=names(1, 64), weight=positive(1e9)),
            min_size=1,
            max_size=3,
        )
    )
    return InferenceSpec(
        user_regions=tuple(regions),
        latency_slo_ms=draw(positive(10_000)),
        replicas=draw(st.integers(1, 10_000)),
    )


@st.composite
def specs(draw: st.DrawFn) -> JobSpec:
    """A valid job spec with every section drawn (cores and memory above zero)."""
    kind = draw(st.sampled_from(["training", "inference", "batch"]))
    inference = draw(inference_specs() if kind == "inference" else st.none() | inference_specs())
    accepted = draw(st.lists(names(1, 64), max_size=4, unique=True))
    return JobSpec(
        name=draw(names(1, 128)),
        kind=kind,
        resources=Resources(
            accelerator="" if accepted else draw(names(0, 64)),
            count=draw(st.integers(0, 100_000)),
            cpu_cores=draw(positive(1_000_000)),
            memory_gb=draw(positive(100_000_000)),
            accelerators=tuple(accepted),
            reference=draw(st.sampled_from(["", *accepted])),
            workload=draw(st.sampled_from(["", *WORKLOADS])),
            min_memory_gb=draw(st.just(0.0) | positive(100_000)),
        ),
        gang=draw(st.booleans()),
        duration_hours=draw(positive(24 * 365)),
        dataset=draw(
            st.none()
            | st.builds(Dataset, origin=names(1, 64), size_gb=st.floats(min_value=0, max_value=1e9))
        ),
        checkpoint=draw(
            st.none()
            | st.builds(
                Checkpoint,
                interval_hours=positive(10_000),
                size_gb=st.floats(min_value=0, max_value=1e8),
            )
        ),
        inference=inference,
        priority=draw(st.integers(-1000, 1000)),
        constraints=Constraints(
            allowed_provinces=tuple(draw(st.lists(names(), max_size=3))),
            allowed_sites=tuple(draw(st.lists(names(), max_size=3))),
            excluded_sites=tuple(draw(st.lists(names(), max_size=3))),
        ),
        command=tuple(draw(st.lists(arguments(), min_size=1, max_size=4))),
        labels=draw(st.dictionaries(LABEL_KEYS, names(), max_size=3)),
        on_site_loss=draw(st.sampled_from(["requeue", "fail"])),
    )


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    """A job; only succeeded and failed jobs carry an exit code (the wire's 0 means none)."""
    state = draw(STATES)
    return Job(
        job_id=draw(JOB_IDS),
        tenant=draw(TENANTS),
        spec=draw(specs()),
        state=state,
        site=draw(st.none() | SITE_IDS),
        attempt=draw(UINT32),
        reason=draw(texts()),
        exit_code=draw(INT32) if state in FINAL_WITH_EXIT_CODE else None,
        last_sequence=draw(UINT64),
        created_unix_ms=draw(INT64),
        updated_unix_ms=draw(INT64),
        request_id=draw(texts()),
    )


@st.composite
def events(draw: st.DrawFn) -> JobEvent:
    """A job event; only succeeded and failed events carry an exit code."""
    state = draw(STATES)
    return JobEvent(
        sequence=draw(UINT64),
        job_id=draw(JOB_IDS),
        state=state,
        cause=draw(texts()),
        time_unix_ms=draw(INT64),
        site=draw(st.none() | SITE_IDS),
        attempt=draw(UINT32),
        message=draw(texts()),
        exit_code=draw(INT32) if state in FINAL_WITH_EXIT_CODE else None,
    )


CANDIDATES = st.builds(
    CandidateSite,
    site=SITE_IDS,
    feasible=st.booleans(),
    reason=texts(),
    terms_cny=st.dictionaries(texts(), FLOATS, max_size=4),
    total_cny=FLOATS,
    accelerator=texts(),
    run_hours=FLOATS,
)
PLACEMENTS = st.builds(
    Placement,
    chosen=st.none() | SITE_IDS,
    candidates=st.lists(CANDIDATES, max_size=3).map(tuple),
    decision_ms=FLOATS,
)
POOLS = st.builds(PoolCapacity, model=texts(), total=UINT32, allocatable=UINT32, in_use=UINT32)
SITES = st.builds(
    SiteInfo,
    site_id=SITE_IDS,
    name=texts(),
    province=texts(),
    side=texts(),
    status=st.sampled_from(SiteStatus),
    pools=st.lists(POOLS, max_size=3).map(tuple),
    cpu_cores=FLOATS,
    memory_gb=FLOATS,
    last_report_unix_ms=INT64,
    running_jobs=UINT32,
    executor=texts(),
    agent_version=texts(),
    capacity_stale=st.booleans(),
    capacity_error=texts(),
    capacity_unix_ms=INT64,
)
CAPACITY_REPORTS = st.builds(
    CapacityReport,
    pools=st.lists(POOLS, max_size=3).map(tuple),
    cpu_cores=FLOATS,
    cpu_cores_free=FLOATS,
    memory_gb=FLOATS,
    memory_gb_free=FLOATS,
    price_cny_per_kwh=FLOATS,
    carbon_kg_per_kwh=FLOATS,
)
USER_REGIONS = st.builds(
    UserRegion,
    id=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,11}", fullmatch=True),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    demand_weight=st.floats(min_value=0, max_value=1e9),
)
LINKS = st.builds(
    Link,
    a=IDS,
    b=IDS,
    rtt_ms=positive(1e6),
    bandwidth_gbps=positive(1e6),
    cny_per_gb=st.floats(min_value=0, max_value=1e6),
)

ATTEMPT_STATUSES = st.builds(
    AttemptStatus, job_id=JOB_IDS, attempt=UINT32, state=st.none() | STATES
)
HELLOS = st.builds(
    Hello,
    site_id=SITE_IDS,
    agent_version=texts(),
    epoch=texts(),
    executor=texts(),
    attempts=st.lists(ATTEMPT_STATUSES, max_size=3).map(tuple),
    heartbeat_sequence=UINT64,
    checkpoints=st.booleans(),
)
JOB_EVENT_REPORTS = st.builds(
    JobEventReport,
    report_id=UINT64,
    job_id=JOB_IDS,
    attempt=UINT32,
    fencing_token=UINT64,
    state=st.none() | STATES,
    exit_code=INT32,
    message=texts(),
    time_unix_ms=INT64,
)
ACKS = st.builds(Ack, id=UINT64)
WELCOMES = st.builds(
    Welcome,
    broker_epoch=texts(),
    heartbeat_interval_s=FLOATS,
    lease_s=FLOATS,
    heartbeat_sequence=UINT64,
)
HEARTBEATS = st.builds(
    Heartbeat,
    sequence=UINT64,
    capacity=st.none() | CAPACITY_REPORTS,
    capacity_error=texts(),
)
LEASE_RENEWALS = st.builds(LeaseRenewal, heartbeat_sequence=UINT64, lease_s=FLOATS)
DISPATCHES = st.builds(
    Dispatch,
    delivery_id=UINT64,
    job_id=JOB_IDS,
    attempt=UINT32,
    fencing_token=UINT64,
    spec=specs(),
    tenant=TENANTS,
)
CANCELS = st.builds(
    CancelAttempt,
    delivery_id=UINT64,
    job_id=JOB_IDS,
    attempt=UINT32,
    reason=texts(),
    checkpoint=st.booleans(),
)
DRAINS = st.builds(Drain, delivery_id=UINT64, drain=st.booleans())

MOVES = st.builds(
    RebalanceMove,
    job_id=texts(),
    kind=st.sampled_from(MoveKind),
    from_site=texts(),
    to_site=texts(),
    savings_cny=FLOATS,
    savings_carbon_kg=FLOATS,
    cost_cny=FLOATS,
    reason=texts(),
    applied=st.booleans(),
    error=texts(),
)
RUNS = st.builds(
    RebalanceRunInfo,
    run_id=texts(),
    trigger=texts(),
    dry_run=st.booleans(),
    started_unix_ms=INT64,
    ended_unix_ms=INT64,
    moves=st.lists(MOVES, max_size=3).map(tuple),
    expected_savings_cny=FLOATS,
    realised_savings_cny=FLOATS,
    errors=st.lists(texts(), max_size=3).map(tuple),
)
RUN_PAGES = st.builds(RebalanceRunPage, runs=st.lists(RUNS, max_size=2), next_page_token=texts())

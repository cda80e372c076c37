"""What-if simulator: replays real GPU workloads over the federation under placement policies."""

from broker.simulate.capacity import Capacity, CapacityError
from broker.simulate.compare import (
    POLICY_NAMES,
    Scenario,
    UnknownPolicyError,
    compare,
    make_policy,
    parse_policies,
    run_policy,
)
from broker.simulate.metrics import PolicyMetrics
from broker.simulate.regions import assign_locations
from broker.simulate.replay import ReplayResult, Run, replay
from broker.simulate.traces import DATA_DIR_ENV, data_dir
from broker.simulate.workload import DEFAULT_LIMIT, NAMED, Workload, load_workload
from computenet.workload import (
    WorkloadError,
    WorkloadJob,
    export_jobs,
    load_jobs,
    read_jobs,
    write_jobs,
)

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_LIMIT",
    "NAMED",
    "POLICY_NAMES",
    "Capacity",
    "CapacityError",
    "PolicyMetrics",
    "ReplayResult",
    "Run",
    "Scenario",
    "UnknownPolicyError",
    "Workload",
    "WorkloadError",
    "WorkloadJob",
    "assign_locations",
    "compare",
    "data_dir",
    "export_jobs",
    "load_jobs",
    "load_workload",
    "make_policy",
    "parse_policies",
    "read_jobs",
    "replay",
    "run_policy",
    "write_jobs",
]

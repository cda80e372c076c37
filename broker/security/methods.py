"""Which gRPC methods belong to agents, clients and operators, and which ones change state."""

from __future__ import annotations

from types import ModuleType

from computenet.v1 import (
    accounting_service_pb2,
    federation_service_pb2,
    job_service_pb2,
    rebalance_service_pb2,
    site_service_pb2,
)


def full_method(module: ModuleType, service: str, method: str) -> str:
    """The `/package.Service/Method` path of a method, checked against the descriptor."""
    descriptor = module.DESCRIPTOR.services_by_name[service]
    return f"/{descriptor.full_name}/{descriptor.methods_by_name[method].name}"


SITE_SERVICE_PREFIX = f"/{site_service_pb2.DESCRIPTOR.services_by_name['SiteService'].full_name}/"
CONNECT = full_method(site_service_pb2, "SiteService", "Connect")
SUBMIT_JOB = full_method(job_service_pb2, "JobService", "SubmitJob")
CANCEL_JOB = full_method(job_service_pb2, "JobService", "CancelJob")
REPORT_DEMAND = full_method(job_service_pb2, "JobService", "ReportDemand")
DRAIN_SITE = full_method(federation_service_pb2, "FederationService", "DrainSite")
PLAN_REBALANCE = full_method(rebalance_service_pb2, "RebalanceService", "PlanRebalance")
APPLY_REBALANCE = full_method(rebalance_service_pb2, "RebalanceService", "ApplyRebalance")
LIST_REBALANCE_RUNS = full_method(rebalance_service_pb2, "RebalanceService", "ListRebalanceRuns")

OPEN_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
"""Services anyone may call: health checking and reflection."""

OPERATOR_METHODS: frozenset[str] = frozenset(
    {DRAIN_SITE, PLAN_REBALANCE, APPLY_REBALANCE, LIST_REBALANCE_RUNS}
)
"""Client methods that need the operator role."""

MUTATING_METHODS: frozenset[str] = frozenset(
    {SUBMIT_JOB, CANCEL_JOB, REPORT_DEMAND, DRAIN_SITE, PLAN_REBALANCE, APPLY_REBALANCE}
)
"""Client methods recorded in the audit log."""


CLIENT_METHODS: frozenset[str] = frozenset(
    f"/{service.full_name}/{method.name}"
    for module in (
        job_service_pb2,
        federation_service_pb2,
        rebalance_service_pb2,
        accounting_service_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)
"""Every method clients call (not agents, not the open services)."""

READ_METHODS: frozenset[str] = CLIENT_METHODS - MUTATING_METHODS
"""Client methods that change nothing: charged to the tenant's read bucket."""


def is_open(method: str) -> bool:
    """True for methods that need no credentials."""
    return method.startswith(OPEN_PREFIXES)


def is_site_method(method: str) -> bool:
    """True for methods agents call with their site certificate."""
    return method.startswith(SITE_SERVICE_PREFIX)


def short_name(method: str) -> str:
    """`JobService/SubmitJob` for `/computenet.v1.JobService/SubmitJob`, for logs."""
    service, _, name = method.strip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"

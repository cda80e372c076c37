"""The checked-in wire code is exactly what the proto files generate."""

from __future__ import annotations

from pathlib import Path

from computenet.codegen import PACKAGE_DIR, REPO, generate


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    written = generate(tmp_path)
    checked_in = REPO / PACKAGE_DIR
    assert written, "protoc generated nothing"
    generated_names = {p.name for p in written}
    on_disk = {p.name for p in checked_in.iterdir() if p.name.endswith((".py", ".pyi"))}
    on_disk.discard("__init__.py")
    assert generated_names == on_disk, "run `make proto`: files differ"
    drift = [p.name for p in written if p.read_bytes() != (checked_in / p.name).read_bytes()]
    assert not drift, f"generated code is stale, run `make proto`: {drift}"


def test_every_service_is_generated() -> None:
    from computenet.v1 import (
        federation_service_pb2_grpc,
        job_service_pb2_grpc,
        rebalance_service_pb2_grpc,
        site_service_pb2_grpc,
    )

    assert hasattr(site_service_pb2_grpc, "SiteServiceStub")
    assert hasattr(job_service_pb2_grpc, "JobServiceStub")
    assert hasattr(federation_service_pb2_grpc, "FederationServiceStub")
    assert hasattr(rebalance_service_pb2_grpc, "RebalanceServiceStub")

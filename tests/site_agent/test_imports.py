"""The agent's import boundaries: a pure core, wire types only in the link, no broker-only deps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "site_agent"
BROKER_ONLY = ("sqlmodel", "sqlalchemy", "apscheduler", "broker")


def loaded_modules(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} | modules


def test_state_core_imports_no_io_libraries() -> None:
    loaded = roots(loaded_modules("site_agent.state"))
    forbidden = {"grpc", "computenet.v1", "sqlite3", *BROKER_ONLY}
    assert loaded.isdisjoint(forbidden), loaded & forbidden


def test_the_whole_agent_needs_no_broker_dependencies() -> None:
    loaded = roots(loaded_modules("site_agent.cli, site_agent.app"))
    assert loaded.isdisjoint(BROKER_ONLY), loaded & set(BROKER_ONLY)


def test_wire_types_appear_only_in_the_link() -> None:
    users = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "computenet.v1" in path.read_text() or "import grpc" in path.read_text()
    )
    assert users == ["link.py"]

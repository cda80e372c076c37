"""`computenet cluster status` and several `--broker` addresses, through the real entry point
against broker replica stand-ins on 127.0.0.1:0."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import grpc
import pytest

from computenet.errors import NotLeaderError
from computenet.types import ClusterLeader, ClusterReplica, ClusterStatus
from tests.sdk.replicas import Refusing, Replica, Serving, start_replica, stop_replica
from tests.sdk.test_cli import cli


def cluster(now_ms: int) -> ClusterStatus:
    """A leader for two hours, a replica seen a second ago and one five minutes ago."""
    return ClusterStatus(
        leader=ClusterLeader("broker-a", "10.0.0.1:50051", "10.0.0.1:50052", 3, now_ms - 7_200_000),
        replicas=(
            ClusterReplica(
                "broker-a", "10.0.0.1:50051", "leader", now_ms - 1_000, "10.0.0.1:50052"
            ),
            ClusterReplica("broker-b", "10.0.0.2:50051", "follower", now_ms - 300_000),
        ),
    )


@pytest.fixture
def serving() -> Iterator[Replica]:
    replica = start_replica(Serving(cluster(int(time.time() * 1000))))
    yield replica
    stop_replica(replica)


@pytest.fixture
def follower() -> Iterator[Replica]:
    replica = start_replica(Refusing(NotLeaderError("not the leader")))
    yield replica
    stop_replica(replica)


def test_cluster_status_json_shape(serving: Replica, capsys: pytest.CaptureFixture[str]) -> None:
    now_ms = 1_760_000_000_000
    serving.servicer.cluster = cluster(now_ms)
    code, out, err = cli(capsys, "cluster", "status", "--broker", serving.address, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "leader": {
            "broker_id": "broker-a",
            "address": "10.0.0.1:50051",
            "agent_address": "10.0.0.1:50052",
            "epoch": 3,
            "since_unix_ms": now_ms - 7_200_000,
        },
        "replicas": [
            {"broker_id": "broker-a", "address": "10.0.0.1:50051", "role": "leader",
             "last_seen_unix_ms": now_ms - 1_000, "agent_address": "10.0.0.1:50052"},
            {"broker_id": "broker-b", "address": "10.0.0.2:50051", "role": "follower",
             "last_seen_unix_ms": now_ms - 300_000, "agent_address": ""},
        ],
    }  # fmt: skip


def test_cluster_status_table(serving: Replica, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "cluster", "status", "--broker", serving.address)
    assert code == 0
    first, *rest = out.splitlines()
    assert first.startswith("leader: broker-a at 10.0.0.1:50051, agents 10.0.0.1:50052, epoch 3")
    assert first.endswith("(2h ago)")
    rows = {line.split()[0]: line for line in rest if line.startswith("broker-")}
    assert re.search(r"^broker-a +leader +\d+s ago", rows["broker-a"])
    assert "follower" in rows["broker-b"] and "5m ago" in rows["broker-b"]


def test_cluster_status_without_a_leader(
    serving: Replica, capsys: pytest.CaptureFixture[str]
) -> None:
    serving.servicer.cluster = ClusterStatus(leader=None)
    code, out, _ = cli(capsys, "cluster", "status", "--broker", serving.address, "--json")
    assert code == 0 and json.loads(out) == {"leader": None, "replicas": []}
    code, out, _ = cli(capsys, "cluster", "status", "--broker", serving.address)
    assert code == 0 and out.startswith("leader: none")


def test_cluster_status_escapes_what_replicas_report(
    serving: Replica, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = "b\x1b[2J[red]x"
    serving.servicer.cluster = ClusterStatus(
        leader=ClusterLeader(evil, "h:1", "", 1, 1),
        replicas=(ClusterReplica(evil, "h:1", "leader", 1),),
    )
    code, out, _ = cli(capsys, "cluster", "status", "--broker", serving.address)
    assert code == 0 and "\x1b" not in out
    assert out.count("b\\x1b[2J[red]x") == 2
    code, out, _ = cli(capsys, "cluster", "status", "--broker", serving.address, "--json")
    assert "\x1b" not in out and json.loads(out)["leader"]["broker_id"] == evil


def test_several_brokers_from_the_option_or_the_environment(
    serving: Replica,
    follower: Replica,
    dead_address: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    brokers = f"{dead_address},{follower.address},{serving.address}"
    code, out, err = cli(capsys, "sites", "--broker", brokers, "--json")
    assert (code, err) == (0, "") and len(json.loads(out)) == 2
    assert follower.methods == ["ListSites"] and serving.methods == ["ListSites"]
    monkeypatch.setenv("COMPUTENET_BROKER", f" {follower.address} , {serving.address},")
    code, out, _ = cli(capsys, "cluster", "status", "--json")
    assert code == 0 and json.loads(out)["leader"]["epoch"] == 3


def test_no_broker_serving_is_one_line_naming_each(
    follower: Replica, dead_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    brokers = f"{follower.address},{dead_address}"
    code, out, err = cli(capsys, "jobs", "cancel", "j-1", "--broker", brokers, "--timeout", "2")
    assert (code, out) == (1, "")
    assert err == (
        "computenet: error: no broker replica served the call (UNAVAILABLE): "
        f"{follower.address}: not the leader (none known); {dead_address}: unreachable\n"
    )


@pytest.mark.parametrize("brokers", ["127.0.0.1:1,nowhere", ",", "127.0.0.1:99999"])
def test_a_bad_address_in_the_list_is_a_usage_error(
    brokers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "cluster", "status", "--broker", brokers)
    assert (code, out) == (2, "")
    assert err.startswith("computenet: error: ") and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_an_unanswered_call_names_the_replica(capsys: pytest.CaptureFixture[str]) -> None:
    frozen = start_replica(Refusing(grpc.StatusCode.UNAVAILABLE, hang=True))
    try:
        code, _, err = cli(
            capsys, "jobs", "get", "j-1", "--broker", frozen.address, "--timeout", "0.3"
        )
    finally:
        stop_replica(frozen)
    assert code == 1
    assert err == (
        f"computenet: error: broker at {frozen.address} did not answer within 0.3 s "
        "(DEADLINE_EXCEEDED)\n"
    )

"""The `computenet` job and site commands, run through the real entry point against the stand-in."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from computenet.cli.main import app
from computenet.cli.runner import run_app
from computenet.errors import FieldViolation, SpecError
from computenet.types import JobState
from tests.sdk.fake_broker import PLACEMENT, RunningFake

SMOKE = """\
name: smoke
kind: batch
resources: {accelerator: a800, count: 1}
duration_hours: 0.01
command: ["sh", "-c", "echo hello"]
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI as its console script does; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        run_app(app, "computenet", list(argv))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.fixture
def smoke(tmp_path: Path) -> Path:
    path = tmp_path / "smoke.yaml"
    path.write_text(SMOKE)
    return path


def test_submit_json_shape(fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]):
    code, out, err = cli(capsys, "submit", str(smoke), "--broker", fake.address, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"job_id": "j-1", "state": "pending", "site": None}


def test_submit_text_and_request_id(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("submit", str(smoke), "--broker", fake.address, "--request-id", "r-7")
    assert cli(capsys, *args)[1].startswith("j-1 pending")
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "already submitted" in out
    assert fake.broker.script.submit_request_ids == ["r-7", "r-7"]


def test_broker_comes_from_the_environment(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("COMPUTENET_BROKER", fake.address)
    assert cli(capsys, "submit", str(smoke), "--json")[0] == 0


def test_jobs_get_and_list_json_shapes(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "submit", str(smoke), "--broker", fake.address)
    code, out, _ = cli(capsys, "jobs", "get", "j-1", "--broker", fake.address, "--json")
    got = json.loads(out)
    assert code == 0
    assert {"job_id", "state", "site", "kind", "attempt", "reason", "exit_code", "tenant",
            "name"} <= set(got)  # fmt: skip
    assert (got["job_id"], got["state"], got["site"], got["kind"]) == ("j-1", "pending", None,
                                                                       "batch")  # fmt: skip
    assert (got["name"], got["tenant"], got["exit_code"]) == ("smoke", "demo", None)
    code, out, _ = cli(capsys, "jobs", "list", "--broker", fake.address, "--json", "--limit", "5")
    assert code == 0 and [j["job_id"] for j in json.loads(out)] == ["j-1"]
    code, out, _ = cli(capsys, "jobs", "get", "j-1", "--broker", fake.address)
    assert code == 0 and "smoke" in out and "pending" in out


def test_jobs_watch_prints_json_lines_until_final(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "submit", str(smoke), "--broker", fake.address)
    fake.broker.add_event("j-1", JobState.RUNNING, "site_report")
    fake.broker.add_event("j-1", JobState.SUCCEEDED, "site_report", exit_code=0)
    code, out, _ = cli(capsys, "jobs", "watch", "j-1", "--broker", fake.address, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(e["sequence"], e["state"]) for e in lines] == [
        (1, "pending"), (2, "running"), (3, "succeeded"),
    ]  # fmt: skip


def test_jobs_watch_filters_need_no_job_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "jobs", "watch", "j-1", "--kind", "batch", "--broker", "x:1")
    assert (code, out) == (2, "")
    assert "--kind and --tenant select jobs" in err and len(err.splitlines()) == 1


def test_cancel_and_unknown_job(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "submit", str(smoke), "--broker", fake.address)
    assert cli(capsys, "jobs", "cancel", "j-1", "--broker", fake.address)[1] == "j-1 cancelled\n"
    code, out, err = cli(capsys, "jobs", "get", "j-9", "--broker", fake.address)
    assert (code, out) == (1, "")
    assert err == "computenet: error: job j-9 not found\n"


def test_plan_and_explain(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "plan", str(smoke), "--broker", fake.address, "--json")
    assert code == 0 and json.loads(out) == PLACEMENT.to_dict()
    assert json.loads(out)["candidates"][0]["terms"] == {"energy": 10.5, "carbon": 2.0}
    cli(capsys, "submit", str(smoke), "--broker", fake.address)
    code, out, _ = cli(capsys, "explain", "j-1", "--broker", fake.address)
    assert code == 0 and "gansu-qingyang" in out and "no free a800" in out
    # the job is pending: the answer is where it would go now, and why it still waits
    assert "j-1 is pending" in out and "fits now at: gansu-qingyang" in out
    fake.broker.jobs["j-1"] = replace(fake.broker.jobs["j-1"], state=JobState.RUNNING)
    code, out, _ = cli(capsys, "explain", "j-1", "--broker", fake.address)
    assert code == 0 and "chosen: gansu-qingyang" in out


def test_sites_table_json_and_drain(fake: RunningFake, capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "sites", "--broker", fake.address, "--json")
    sites = json.loads(out)
    assert code == 0 and [s["site_id"] for s in sites] == ["gansu-qingyang", "beijing-yizhuang"]
    assert sites[0]["pools"][0] == {"model": "a800", "total": 16, "allocatable": 16,
                                    "in_use": 4, "federation_in_use": 0, "held": 0,
                                    "free": 12}  # fmt: skip
    code, out, _ = cli(capsys, "sites", "--broker", fake.address)
    assert code == 0 and "a800 12/16" in out and "never" in out
    code, out, _ = cli(capsys, "sites", "get", "gansu-qingyang", "--broker", fake.address)
    assert code == 0 and "a800" in out and "allocatable" in out and "held" in out
    code, out, _ = cli(capsys, "sites", "drain", "gansu-qingyang", "--broker", fake.address)
    assert (code, out) == (0, "gansu-qingyang draining\n")
    out = cli(capsys, "sites", "drain", "gansu-qingyang", "--undo", "--broker", fake.address)[1]
    assert out == "gansu-qingyang active\n"


def test_sites_show_stale_capacity_and_why(fake: RunningFake, capsys: pytest.CaptureFixture[str]):
    site = fake.broker.sites["gansu-qingyang"]
    error = "scontrol: [red]down"
    fake.broker.sites["gansu-qingyang"] = replace(
        site, capacity_stale=True, capacity_error=error, capacity_unix_ms=1
    )
    code, out, _ = cli(capsys, "sites", "get", "gansu-qingyang", "--broker", fake.address)
    assert code == 0 and "capacity stale" in out and error in out
    code, out, _ = cli(capsys, "sites", "--broker", fake.address)
    assert code == 0 and "stale" in out
    code, out, _ = cli(capsys, "sites", "get", "gansu-qingyang", "--broker", fake.address, "--json")
    shown = json.loads(out)
    assert (shown["capacity_stale"], shown["capacity_error"]) == (True, error)


def test_unreachable_broker_is_one_line_exit_1(
    dead_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "jobs", "list", "--broker", dead_address)
    assert (code, out) == (1, "")
    assert err == f"computenet: error: cannot reach broker at {dead_address} (UNAVAILABLE)\n"


def test_malformed_spec_is_one_line_with_every_field_and_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: ''\nkind: quantum\nduration_hours: -1\ncommand: []\n")
    code, out, err = cli(capsys, "submit", str(bad), "--broker", "127.0.0.1:1")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert err.startswith(f"computenet: error: {bad}:1: name: ")
    for line, field in ((2, "kind"), (3, "duration_hours"), (4, "command")):
        assert f"; line {line}: {field}: " in err


def test_server_side_violations_are_listed_exit_1(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.broker.script.reject_submit = SpecError(
        "job spec rejected",
        [FieldViolation("spec.resources.accelerator", "unknown accelerator 'a800x'"),
         FieldViolation("spec.constraints.allowed_sites[0]", "unknown site 'mars'")],
    )  # fmt: skip
    code, out, err = cli(capsys, "submit", str(smoke), "--broker", fake.address)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "computenet: error: job spec rejected",
        "  spec.resources.accelerator: unknown accelerator 'a800x'",
        "  spec.constraints.allowed_sites[0]: unknown site 'mars'",
    ]


def test_unreadable_yaml_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    code, _, err = cli(capsys, "plan", str(bad))
    assert code == 2 and "invalid YAML" in err and len(err.splitlines()) == 1
    assert re.match(rf"computenet: error: {re.escape(str(bad))}:\d+: invalid YAML: ", err)


def test_bad_broker_address_is_a_usage_error(smoke: Path, capsys: pytest.CaptureFixture[str]):
    code, _, err = cli(capsys, "submit", str(smoke), "--broker", "nowhere")
    assert code == 2 and err.startswith("computenet: error: invalid address")


def test_jobs_list_fits_80_columns_and_speaks_yaml(
    fake: RunningFake, smoke: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    cli(capsys, "submit", str(smoke), "--broker", fake.address)
    reason = "no feasible site (chongqing: gang of 8 a800 needs one pool, 4 free; 9 more)"
    fake.broker.jobs["j-1"] = replace(fake.broker.jobs["j-1"], reason=reason)
    code, out, _ = cli(capsys, "jobs", "list", "--broker", fake.address)
    assert code == 0 and all(len(line) <= 80 for line in out.splitlines()), out
    assert "j-1" in out.split() and reason in " ".join(out.split())
    code, out, _ = cli(capsys, "jobs", "list", "--broker", fake.address, "-o", "yaml")
    assert code == 0 and [j["job_id"] for j in yaml.safe_load(out)] == ["j-1"]
    code, out, _ = cli(capsys, "jobs", "list", "--broker", fake.address, "-o", "wide")
    assert code == 0 and out.split()[:3] == ["job", "id", "name"] and "tenant" in out

"""Client profiles: the config file's contexts, and flags over environment over context over
defaults, through the real `computenet` entry point against the broker stand-in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computenet.cli.main import app
from computenet.cli.runner import run_app
from computenet.profiles import (
    ClientConfig,
    Context,
    ProfileError,
    config_path,
    load_client_config,
    resolve,
)
from tests.sdk.fake_broker import RunningFake


@pytest.fixture(autouse=True)
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "client" / "config.yaml"
    monkeypatch.setenv("COMPUTENET_CONFIG", str(path))
    for name in ("COMPUTENET_BROKER", "COMPUTENET_CA", "COMPUTENET_TOKEN", "COMPUTENET_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        run_app(app, "computenet", list(argv))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_config_path_honours_the_variable_then_xdg(tmp_path: Path) -> None:
    assert config_path({"COMPUTENET_CONFIG": "/etc/cn.yaml"}) == Path("/etc/cn.yaml")
    xdg = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert config_path(xdg) == tmp_path / "computenet" / "config.yaml"
    assert config_path({}).parts[-3:] == (".config", "computenet", "config.yaml")


def test_a_context_is_used_when_nothing_else_names_a_broker(
    fake: RunningFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    code, _, err = cli(
        capsys, "config", "set-context", "lab", "--broker", fake.address, "--token-file", str(token)
    )
    assert (code, err) == (0, "")
    code, out, err = cli(capsys, "sites", "--json")
    assert (code, err) == (0, "")
    assert isinstance(json.loads(out), list)
    code, _, err = cli(capsys, "jobs", "get", "j-none")
    assert code == 1 and "j-none" in err  # an answer from the stand-in, with the token
    assert fake.broker.script.metadata[-1]["authorization"] == "Bearer s3cret-token"


def test_flag_beats_environment_beats_context(
    fake: RunningFake,
    dead_address: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli(capsys, "config", "set-context", "dead", "--broker", dead_address)
    code, _, err = cli(capsys, "sites", "--timeout", "0.5")
    assert code == 1 and dead_address in err
    monkeypatch.setenv("COMPUTENET_BROKER", fake.address)
    assert cli(capsys, "sites", "--json")[0] == 0  # the environment over the context
    monkeypatch.setenv("COMPUTENET_BROKER", dead_address)
    code, _, err = cli(capsys, "sites", "--json", "--broker", fake.address)
    assert (code, err) == (0, "")  # the flag over the environment


def test_context_flag_and_variable_pick_a_context(
    fake: RunningFake,
    dead_address: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli(capsys, "config", "set-context", "live", "--broker", fake.address)
    cli(capsys, "config", "set-context", "dead", "--broker", dead_address, "--use")
    assert cli(capsys, "config", "current-context")[1].strip() == "dead"
    assert cli(capsys, "--context", "live", "sites", "--json")[0] == 0
    monkeypatch.setenv("COMPUTENET_CONTEXT", "live")
    assert cli(capsys, "sites", "--json")[0] == 0
    code, _, err = cli(capsys, "--context", "nope", "sites")
    assert code == 2 and "no context named 'nope' (known: dead, live)" in err
    assert cli(capsys, "config", "use-context", "live")[0] == 0
    assert cli(capsys, "config", "current-context")[1].strip() == "live"


def test_view_never_prints_tokens(
    config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(
        "current_context: a\n"
        "contexts:\n"
        "  a: {brokers: [b1:50051, b2:50051], token: inline-secret, tenant: alice}\n"
        "  b: {brokers: 'c:1', token_file: tok, ca: ca.pem}\n"
    )
    (tmp_path / "client" / "tok").write_text("file-secret")
    code, out, _ = cli(capsys, "config", "view")
    assert code == 0
    assert "inline-secret" not in out and "file-secret" not in out
    assert "<redacted>" in out and "b2:50051" in out
    data = json.loads(cli(capsys, "config", "view", "--json")[1])
    assert data["contexts"]["b"]["ca"] == str(tmp_path / "client" / "ca.pem")
    assert data["contexts"]["b"]["brokers"] == ["c:1"]


def test_errors_name_the_file_line_and_field(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(
        "contexts:\n  a:\n    brokers: [ok:1]\n    tokn: x\n  b:\n    brokers: ['no port']\n"
    )
    code, _, err = cli(capsys, "sites")
    assert code == 2
    assert err.splitlines() == [
        f"computenet: error: {config_file}:4: contexts.a.tokn: unknown field",
        f"computenet: error: {config_file}:6: contexts.b.brokers[0]: invalid address "
        "'no port': expected HOST:PORT",
    ]


def test_set_context_refuses_a_new_context_without_a_broker(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    code, _, err = cli(capsys, "config", "set-context", "x", "--tenant", "t")
    assert code == 2 and "give --broker" in err
    assert not config_file.exists()
    cli(capsys, "config", "set-context", "x", "--broker", "h:1")
    assert cli(capsys, "config", "set-context", "x", "--tenant", "t")[0] == 0
    assert load_client_config(config_file).contexts["x"] == Context(brokers=["h:1"], tenant="t")
    assert config_file.stat().st_mode & 0o077 == 0  # it may hold tokens: owner only


def test_an_unreadable_token_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "config", "set-context", "x", "--broker", "h:1", "--token-file", "/nonexistent/t")
    code, _, err = cli(capsys, "sites")
    assert code == 2 and "context x: token_file /nonexistent/t: no such file" in err


PARTS = st.sampled_from([None, "flag", "env", "ctx"])


@given(broker=PARTS, ca=PARTS, token=PARTS)
def test_each_part_comes_from_the_highest_source_that_gives_it(
    broker: str | None, ca: str | None, token: str | None
) -> None:
    rank = {"flag": 0, "env": 1, "ctx": 2}
    env: dict[str, str] = {}
    ctx_fields: dict[str, object] = {"brokers": ["ctx:1"]}
    # each part given at its own level and every level below it
    if broker is not None and rank[broker] <= 1:
        env["COMPUTENET_BROKER"] = "env:1"
    if ca is not None:
        if rank[ca] <= 1:
            env["COMPUTENET_CA"] = "/env/ca.pem"
        ctx_fields["ca"] = Path("/ctx/ca.pem")
    if token is not None:
        if rank[token] <= 1:
            env["COMPUTENET_TOKEN"] = "env-token"
        ctx_fields["token"] = "ctx-token"
    use_context = broker is not None or ca is not None or token is not None
    config = ClientConfig(
        current_context="c" if use_context else None, contexts={"c": Context(**ctx_fields)}
    )
    conn = resolve(
        broker_flag="flag:1" if broker == "flag" else None,
        context_flag=None,
        env=env,
        config=config,
        default_broker="default:1",
    )
    expected_broker = {"flag": "flag:1", "env": "env:1", "ctx": "ctx:1"}.get(
        broker or "", "ctx:1" if use_context else "default:1"
    )
    assert conn.broker == expected_broker
    assert conn.ca == {None: None, "ctx": "/ctx/ca.pem"}.get(ca, "/env/ca.pem")
    assert conn.token == {None: None, "ctx": "ctx-token"}.get(token, "env-token")


def test_a_current_context_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("current_context: gone\ncontexts: {}\n")
    with pytest.raises(ProfileError, match=r"c\.yaml:1: current_context 'gone' names no context"):
        load_client_config(path)


def test_the_documented_file_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "contexts:" in b]
    path = tmp_path / "config.yaml"
    path.write_text(block)
    config = load_client_config(path)
    assert config.current_context == "prod"
    assert config.contexts["prod"].brokers == ["a.example.cn:50051", "b.example.cn:50051"]

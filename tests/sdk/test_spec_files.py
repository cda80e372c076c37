"""Any spec file gets one line and exit status 2 from the CLI, never a traceback or a hang:
hostile files by name, then hypothesis over arbitrary bytes and arbitrary nested documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from computenet.cli.main import app
from tests.sdk.fake_broker import RunningFake, start_fake_broker

VALID = """\
name: ok
kind: batch
resources: {accelerator: a800, count: 1}
duration_hours: 0.5
command: ["true"]
"""

Writer = Callable[[Path], None]


def _text(content: str) -> Writer:
    return lambda path: path.write_text(content, encoding="utf-8", errors="surrogatepass")


def _bytes(content: bytes) -> Writer:
    return lambda path: path.write_bytes(content)


def _laughs(levels: int = 10) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        name, prev = chr(ord("a") + k), chr(ord("a") + k - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    return "\n".join(lines) + "\nname: x\n"


HOSTILE: dict[str, Writer] = {
    "binary": _bytes(bytes(range(256)) * 8),
    "invalid-utf8": _bytes(VALID.encode() + b"labels: {k: \xc3\x28}\n"),
    "nul-bytes": _bytes(VALID.encode().replace(b"ok", b"o\x00k")),
    "json-lone-surrogate": _text(
        '{"name": "\\ud800", "kind": "batch", "duration_hours": 1, "command": ["x"]}'
    ),
    "yaml-lone-surrogate": _text(VALID.replace("name: ok", 'name: "\\ud800"')),
    "json-1000-deep": _text('{"labels": ' + '{"a": ' * 1000 + "1" + "}" * 1001),
    "yaml-1000-deep": _text("labels:\n" + "".join(" " * k + "- \n" for k in range(1000))),
    "flow-1000-deep": _text("labels: " + "[" * 1000 + "]" * 1000),
    "huge": _text("name: " + "x" * 3_000_000 + "\n"),
    "huge-valid-label": _text(VALID + "labels: {team: " + "v" * 2_500_000 + "}\n"),
    "billion-laughs": _text(_laughs()),
    "huge-int": _text(VALID + "priority: " + "9" * 5000 + "\n"),
    "bad-date": _text(VALID + "labels: {k: 2001-13-45}\n"),
    "unhashable-key": _text("{[1, 2]: x}"),
    "python-tag": _text("name: !!python/object/apply:os.system [true]\n"),
    "two-documents": _text(VALID + "---\n" + VALID),
    "a-list": _text("- 1\n- 2\n"),
    "empty": _text(""),
    "escape-in-name": _text(VALID.replace("name: ok", 'name: "\\e[2J\\a[red]evil"')),
    "nul-in-command": _text(VALID.replace('["true"]', '["a\\0b"]')),
    "duplicate-key": _text(VALID + "name: again\n"),
}


@pytest.fixture(scope="module")
def broker() -> Iterator[RunningFake]:
    running = start_fake_broker()
    try:
        yield running
    finally:
        running.server.stop(grace=None)


RUNNER = CliRunner()


def _check(argv: list[str], path: Path) -> tuple[int, str]:
    """Run the CLI in process; exit 0, or exit 2 with one line naming the file."""
    result = RUNNER.invoke(app, argv)
    err = result.stderr
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2), (result.exit_code, err)
    if result.exit_code == 2:
        assert err.startswith(f"computenet: error: {path}"), err
        assert err.endswith("\n") and err.count("\n") == 1, err
        assert result.stdout == ""
    return result.exit_code, err


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["submit", "plan"])
def test_a_hostile_spec_file_is_one_line_and_exit_2(
    broker: RunningFake, tmp_path: Path, name: str, command: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    HOSTILE[name](path)
    calls = len(broker.broker.script.submit_request_ids)
    code, err = _check([command, str(path), "--broker", broker.address], path)
    assert code == 2
    assert len(err) < 1000
    assert "\x1b" not in err and "\x00" not in err
    assert len(broker.broker.script.submit_request_ids) == calls  # refused before any call


@pytest.mark.parametrize("kind", ["directory", "missing", "fifo"])
def test_a_path_that_is_no_file_is_one_line_and_exit_2(
    broker: RunningFake, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # nobody writes: reading it must not wait
    code, _err = _check(["submit", str(path), "--broker", broker.address], path)
    assert code == 2


def test_the_line_names_file_line_and_field(broker: RunningFake, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(VALID.replace('["true"]', '["a\\0b"]'))
    _, err = _check(["submit", str(path), "--broker", broker.address], path)
    assert (
        err == f"computenet: error: {path}:5: command[0]: must not contain NUL (\\x00) characters\n"
    )


def test_a_valid_file_is_submitted(broker: RunningFake, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    assert _check(["submit", str(path), "--broker", broker.address], path)[0] == 0


@pytest.mark.parametrize("name", ["binary", "json-1000-deep", "billion-laughs", "fifo"])
def test_the_console_script_answers_one_line_too(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "fifo":
        os.mkfifo(path)
    else:
        HOSTILE[name](path)
    done = subprocess.run(
        [sys.executable, "-c", "from computenet.cli.main import main; main()", "plan", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COMPUTENET_BROKER": "127.0.0.1:1"},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"computenet: error: {path}") and done.stderr.count("\n") == 1


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec="utf-8") | st.sampled_from("\x00\x1b\ud800\udfff"), max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    ["name", "kind", "resources", "duration_hours", "command", "labels", "inference",
     "constraints", "dataset", "checkpoint", "priority", "gang", "on_site_loss", "extra"]
)  # fmt: skip
SPECISH = st.dictionaries(FIELDS, VALUES, max_size=8).map(lambda d: {**yaml.safe_load(VALID), **d})
DOCUMENTS = VALUES | SPECISH
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("fuzz")) / "spec"


@FAST
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes(
    broker: RunningFake, tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = _tmp(tmp_path_factory)
    path.write_bytes(data)
    _check(["plan", str(path), "--broker", broker.address], path)


@FAST
@given(document=DOCUMENTS, as_json=st.booleans())
def test_arbitrary_nested_documents(
    broker: RunningFake,
    tmp_path_factory: pytest.TempPathFactory,
    document: object,
    as_json: bool,
) -> None:
    path = _tmp(tmp_path_factory)
    if as_json:  # \ud800 and friends travel as JSON escapes
        text = json.dumps(document, ensure_ascii=True)
    else:
        text = yaml.safe_dump(document, allow_unicode=False)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(["submit", str(path), "--broker", broker.address], path)


@FAST
@given(
    depth=st.integers(1, 1500),
    opener=st.sampled_from(["[", "{a: ", '{"a": ', "- "]),
    aliases=st.integers(0, 12),
)
def test_deep_nesting_and_aliases(
    broker: RunningFake,
    tmp_path_factory: pytest.TempPathFactory,
    depth: int,
    opener: str,
    aliases: int,
) -> None:
    path = _tmp(tmp_path_factory)
    if opener == "- ":
        body = "".join("  " * k + "- \n" for k in range(depth))
    else:
        closer = "]" if opener == "[" else "}"
        body = opener * depth + "1" + closer * depth
    text = f"labels: {body}\n" if opener != "- " else f"labels:\n{body}"
    path.write_text(_laughs(aliases) if aliases > 1 else VALID + text)
    _check(["plan", str(path), "--broker", broker.address], path)

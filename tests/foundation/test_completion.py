"""Shell completion of the three console scripts: their sub-commands complete in bash and zsh."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPTS = [
    ("computenet", "computenet.cli.main", "jo", "jobs"),
    ("computenet-broker", "broker.cli", "se", "serve"),
    ("computenet-agent", "site_agent.cli", "ch", "check"),
]


def _run(module: str, prog: str, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = f"import sys; sys.argv = [{prog!r}, *sys.argv[1:]]; from {module} import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("prog", "module", "prefix", "command"), SCRIPTS)
def test_sub_commands_complete(prog: str, module: str, prefix: str, command: str) -> None:
    var = "_" + prog.upper().replace("-", "_") + "_COMPLETE"
    words = {"COMP_WORDS": f"{prog} {prefix}", "COMP_CWORD": "1"}
    bash = _run(module, prog, env={var: "complete_bash", **words})
    assert (bash.returncode, bash.stderr) == (0, "")
    assert command in bash.stdout.split()
    zsh = _run(module, prog, env={var: "complete_zsh", "_TYPER_COMPLETE_ARGS": f"{prog} {prefix}"})
    assert zsh.returncode == 0 and command in zsh.stdout


@pytest.mark.parametrize(("prog", "module", "prefix", "command"), SCRIPTS)
def test_completion_scripts_are_shown(prog: str, module: str, prefix: str, command: str) -> None:
    # typer detects the shell it runs under (here whatever runs the tests, `sh` in CI) unless
    # told not to; then --show-completion takes the shell's name
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = _run(module, prog, "--show-completion", "bash", env=no_detection)
    assert shown.returncode == 0
    assert f"complete -o default -F _{prog.replace('-', '_')}_completion {prog}" in shown.stdout

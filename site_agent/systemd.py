"""The systemd unit files shipped in the package, and the agent's unit filled in for this host."""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path

AGENT_UNIT = "computenet-agent.service"
BROKER_UNIT = "computenet-broker.service"
DEFAULT_CONFIG = Path("/etc/computenet/agent.yaml")


def shipped_unit(package: str, name: str) -> str:
    """The text of a unit file shipped in `package`'s units/ folder (site_agent or broker)."""
    return (resources.files(package) / "units" / name).read_text(encoding="utf-8")


def installed_agent() -> Path | None:
    """The `computenet-agent` script of the environment this code runs in, if it has one."""
    script = Path(sys.prefix) / "bin" / "computenet-agent"
    return script if script.is_file() else None


def agent_unit(config: Path | None = None, executable: Path | None = None) -> str:
    """The shipped agent unit with its ExecStart pointing at `executable` and `config`.

    Unset parts keep the shipped defaults (/opt/computenet, /etc/computenet/agent.yaml).
    """
    text = shipped_unit("site_agent", AGENT_UNIT)
    if config is None and executable is None:
        return text
    exe = str(executable) if executable else "/opt/computenet/bin/computenet-agent"
    conf = str(config.absolute()) if config else str(DEFAULT_CONFIG)
    exec_start = f"ExecStart={_quoted(exe)} run --config {_quoted(conf)}"
    lines = [exec_start if line.startswith("ExecStart=") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def _quoted(word: str) -> str:
    # systemd splits ExecStart like a shell does for quotes; plain paths stay unquoted
    return word if shlex.quote(word) == word else '"' + word.replace('"', '\\"') + '"'

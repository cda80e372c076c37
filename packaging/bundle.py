"""Build the offline bundle: the wheels the agent (and optionally the broker) needs on this
platform, the systemd units and an install script, as dist/computenet-offline-VERSION.tar.gz.

Built online (wheels come from the package index, pinned to the versions of the environment that
runs this script, which are the ones the tests ran with); installed offline by its install.sh.
Usage: python packaging/bundle.py [--broker] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "computenet"
SKIP_COPY = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".tools",
    "node_modules", ".hypothesis", "agent-state", "*.db", "*.db-*",
)  # fmt: skip


def version() -> str:
    """The project version from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def pins() -> list[str]:
    """`name==version` of every distribution in this environment except the project itself."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != PROJECT:
            found[name.lower()] = f"{name}=={dist.version}"
    return sorted(found.values())


def pip(*args: str) -> None:
    """Run this environment's pip; its output goes to the console."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def build(out: Path, broker: bool) -> Path:
    """Write the bundle into `out` and return its path."""
    ver = version()
    extras = "agent,broker" if broker else "agent"
    name = f"{PROJECT}-offline-{ver}"
    with tempfile.TemporaryDirectory(prefix="computenet-bundle-") as tmp:
        stage, wheels = Path(tmp) / name, Path(tmp) / name / "wheels"
        wheels.mkdir(parents=True)
        # build from a clean copy: a stale build/ folder must not leak old files into the wheel
        source = Path(tmp) / "source"
        shutil.copytree(ROOT, source, ignore=SKIP_COPY)
        # isolated build: the environment's own setuptools may be older than pyproject needs
        pip("wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source))
        (project_wheel,) = wheels.glob(f"{PROJECT}-{ver}-*.whl")
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(pins()) + "\n")
        pip_version = metadata.version("pip")
        pip(
            "wheel", "--quiet", "-w", str(wheels), "-c", str(constraints),
            f"{project_wheel}[{extras}]", f"pip=={pip_version}",
        )  # fmt: skip
        units = stage / "units"
        units.mkdir()
        shutil.copy2(ROOT / "site_agent" / "units" / "computenet-agent.service", units)
        if broker:
            shutil.copy2(ROOT / "broker" / "units" / "computenet-broker.service", units)
        install = stage / "install.sh"
        shutil.copy2(ROOT / "packaging" / "install.sh", install)
        install.chmod(0o755)
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        (stage / "bundle.env").write_text(
            f"BUNDLE_VERSION={ver}\nBUNDLE_PYTHON={python}\nBUNDLE_EXTRAS={extras}\n"
            f"BUNDLE_PIP={pip_version}\n"
            f"BUNDLE_PLATFORM={sysconfig.get_platform()}\n"
            f"BUNDLE_MACHINE={platform.machine()}\n"
        )
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{name}.tar.gz"
        partial = target.with_name(f".{target.name}.partial")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            tar.add(stage, arcname=name)
        os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Entry point: build the bundle and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", action="store_true", help="also the broker's wheels")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder")
    args = parser.parse_args(argv)
    target = build(args.out.absolute(), args.broker)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

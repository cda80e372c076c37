"""The accelerators of this host as the vendors' tools list them: nvidia-smi, npu-smi, hy-smi.

Each parser turns one tool's text into devices with topology model ids; `probe_devices` runs the
tools that are installed. A missing tool means no devices of that vendor, never an error.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping

from site_agent.devices.vendors import Device, Vendor

log = logging.getLogger(__name__)

NVIDIA_SMI_ARGS = ("--query-gpu=index,name,memory.total", "--format=csv,noheader")
NPU_SMI_ARGS = ("info",)
HY_SMI_ARGS = ("--showproductname",)
_VENDOR_WORDS = frozenset({"nvidia", "tesla", "geforce", "quadro", "amd", "instinct"})
_PREFIX_WORDS = frozenset({"rtx", "gtx"})


def gpu_model_from_name(name: str) -> str:
    """Model id from a GPU name: "NVIDIA A800-SXM4-80GB" -> "a800", "H100 80GB HBM3" -> "h100"."""
    words = [w for w in re.split(r"[\s\-_]+", name.strip().lower()) if w]
    words = [w for w in words if w not in _VENDOR_WORDS]
    if not words:
        return ""
    if words[0] in _PREFIX_WORDS and len(words) > 1:
        return words[0] + words[1]
    return words[0]


def parse_nvidia_smi(text: str) -> tuple[Device, ...]:
    """Devices from `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader`.

    Lines without a leading index (`name, memory`) are numbered in the order listed, which is
    nvidia-smi's own order.
    """
    devices: list[Device] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if not fields[0]:
            continue
        if fields[0].isdigit() and len(fields) > 1:
            index, name = int(fields[0]), fields[1]
        else:
            index, name = len(devices), fields[0]
        model = gpu_model_from_name(name)
        if model:
            devices.append(Device(Vendor.NVIDIA, index, model))
    return tuple(devices)


def ascend_model(name: str, *, chips_per_npu: int = 1) -> str:
    """Topology model id of an Ascend chip name as npu-smi prints it.

    "910B3" / "Ascend910B4" -> "910b"; "Ascend910" on an Atlas A3 (two chips per NPU) -> "910c";
    other names lower-cased without the "Ascend" prefix and the bin digit ("310P3" -> "310p").
    """
    bare = name.strip().lower().removeprefix("ascend").strip("_- ")
    if bare.startswith(("910c", "910_93")) or (bare == "910" and chips_per_npu > 1):
        return "910c"
    match = re.match(r"(\d{3}[a-z]*)", bare)
    return match.group(1) if match else bare


_BUS_ID = re.compile(r"^(?:[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d|NA)$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_npu_smi_info(text: str) -> tuple[Device, ...]:
    """Devices (one per NPU card) from `npu-smi info`.

    Each chip is a pair of rows: `| NPU Name | Health | ...` then `| Chip [Device|Phy-ID] |
    Bus-Id | ...`. The runtime id of a chip (what ASCEND_RT_VISIBLE_DEVICES takes) is its
    Device / Phy-ID column where the table has one, else the NPU id. An Atlas A3 card lists two
    chips under one NPU id; it is one card with two runtime ids. The process table after the
    chips is not read.
    """
    lines = text.splitlines()
    header = next((line for line in lines if line.lstrip("| ").startswith("Chip")), "")
    has_id_column = bool(re.search(r"Device|Phy-I[Dd]", header))
    chips: dict[int, list[tuple[str, int]]] = {}
    pending: tuple[int, str] | None = None
    for line in lines:
        if "Process id" in line:
            break
        cells = _cells(line)
        if not line.startswith("|") or len(cells) < 3:
            continue
        first = cells[0].split()
        if not first or not first[0].isdigit():
            continue
        if all(t.isdigit() for t in first) and _BUS_ID.match(cells[1]) and pending is not None:
            npu, name = pending
            runtime_id = int(first[1]) if has_id_column and len(first) > 1 else npu
            chips.setdefault(npu, []).append((name, runtime_id))
            pending = None
        elif len(first) >= 2 and not first[1].isdigit():
            pending = (int(first[0]), first[1])
    devices = []
    for npu, listed in sorted(chips.items()):
        model = ascend_model(listed[0][0], chips_per_npu=len(listed))
        ids = tuple(runtime_id for _, runtime_id in listed)
        devices.append(Device(Vendor.ASCEND, npu, model, chips=() if ids == (npu,) else ids))
    return tuple(devices)


def hygon_model(name: str) -> str:
    """Topology model id of a Hygon card series: "K100_AI" -> "k100ai", "Z100SM" -> "z100"."""
    bare = re.sub(r"[^a-z0-9]", "", name.lower().replace("hygon", "").replace("dcu", ""))
    for family in ("k100ai", "k100", "z100", "bw1000"):
        if bare.startswith(family):
            return family
    return bare


_HY_SERIES = re.compile(r"^\s*(?:DCU|HCU|GPU)\[(\d+)\]\s*:\s*Card [Ss]eries:\s*(\S.*?)\s*$")


def parse_hy_smi_product(text: str) -> tuple[Device, ...]:
    """Devices from `hy-smi --showproductname` (`DCU[0] : Card Series: K100_AI` lines; newer
    releases write HCU[...]); the bracketed number is the HIP device index."""
    found: dict[int, str] = {}
    for line in text.splitlines():
        match = _HY_SERIES.match(line)
        if match:
            found.setdefault(int(match.group(1)), hygon_model(match.group(2)))
    return tuple(Device(Vendor.HYGON, i, m) for i, m in sorted(found.items()) if m)


_PROBES: tuple[tuple[str, tuple[str, ...], Callable[[str], tuple[Device, ...]]], ...] = (
    ("nvidia-smi", NVIDIA_SMI_ARGS, parse_nvidia_smi),
    ("npu-smi", NPU_SMI_ARGS, parse_npu_smi_info),
    ("hy-smi", HY_SMI_ARGS, parse_hy_smi_product),
)


def probe_devices(
    env: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> tuple[Device, ...]:
    """Every accelerator the installed vendor tools list; tools that are absent or fail add none."""
    devices: list[Device] = []
    for tool, args, parse in _PROBES:
        text = _run(tool, args, env, timeout_s)
        if text is not None:
            found = parse(text)
            if not found:
                log.warning("device tool listed no devices tool=%s", tool)
            devices += found
    return tuple(devices)


def _run(
    tool: str, args: tuple[str, ...], env: Mapping[str, str] | None, timeout_s: float
) -> str | None:
    binary = shutil.which(tool, path=(env if env is not None else os.environ).get("PATH"))
    if binary is None:
        return None
    try:
        proc = subprocess.run(
            [binary, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("device probe failed tool=%s error=%s", tool, exc)
        return None
    if proc.returncode != 0:
        log.warning(
            "device probe failed tool=%s rc=%d stderr=%s",
            tool,
            proc.returncode,
            proc.stderr.strip(),
        )
        return None
    return proc.stdout

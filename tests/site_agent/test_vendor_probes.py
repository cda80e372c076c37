"""Host probes for accelerators: nvidia-smi, npu-smi and hy-smi outputs recorded in data/ (see
data/README.md for where each layout comes from), the tools run for real as stand-in scripts on
PATH, and hosts without any of them."""

from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path

import pytest

from computenet.types import PoolCapacity
from site_agent.capacity.host import HostSource
from site_agent.capacity.vendor_probes import (
    ascend_model,
    hygon_model,
    parse_hy_smi_product,
    parse_npu_smi_info,
    parse_nvidia_smi,
    probe_devices,
)
from site_agent.devices.vendors import Device, Vendor

DATA = Path(__file__).parent / "data"


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_npu_smi_on_an_a2_server_lists_eight_910b_cards_by_npu_id() -> None:
    devices = parse_npu_smi_info(sample("npu-smi-info-910b.txt"))
    # eight cards, whatever their health; the process table (NPU 4 busy) adds none
    assert devices == tuple(Device(Vendor.ASCEND, i, "910b") for i in range(8))


def test_npu_smi_on_an_a3_server_lists_910c_cards_of_two_chips() -> None:
    devices = parse_npu_smi_info(sample("npu-smi-info-a3.txt"))
    assert devices == (
        Device(Vendor.ASCEND, 0, "910c", chips=(0, 1)),
        Device(Vendor.ASCEND, 1, "910c", chips=(2, 3)),
    )
    assert devices[1].runtime_ids == (2, 3)


def test_npu_smi_with_a_device_column_uses_it_as_the_runtime_id() -> None:
    devices = parse_npu_smi_info(sample("npu-smi-info-310p.txt"))
    assert [(d.index, d.model, d.runtime_ids) for d in devices] == [
        (6, "310p", (0,)),
        (7, "310p", (1,)),
    ]


@pytest.mark.parametrize(
    ("name", "chips", "model"),
    [
        ("910B3", 1, "910b"),
        ("910B", 1, "910b"),
        ("Ascend910B4", 1, "910b"),
        ("Ascend910", 2, "910c"),
        ("910C", 1, "910c"),
        ("310P3", 1, "310p"),
        ("910A", 1, "910a"),
    ],
)
def test_ascend_names_map_to_topology_model_ids(name: str, chips: int, model: str) -> None:
    assert ascend_model(name, chips_per_npu=chips) == model


def test_hy_smi_lists_dcus_by_their_hip_index() -> None:
    assert parse_hy_smi_product(sample("hy-smi-showproductname-k100ai.txt")) == tuple(
        Device(Vendor.HYGON, i, "k100ai") for i in range(4)
    )
    assert parse_hy_smi_product(sample("hy-smi-showproductname-z100.txt")) == (
        Device(Vendor.HYGON, 0, "z100"),
        Device(Vendor.HYGON, 1, "z100"),
    )


@pytest.mark.parametrize(
    ("series", "model"),
    [("K100_AI", "k100ai"), ("K100", "k100"), ("Z100SM", "z100"), ("Z100L", "z100")],
)
def test_hygon_series_map_to_topology_model_ids(series: str, model: str) -> None:
    assert hygon_model(series) == model


def test_nvidia_smi_with_and_without_the_index_column() -> None:
    with_index = parse_nvidia_smi(sample("nvidia-smi-index-name-memory.txt"))
    assert [(d.index, d.model) for d in with_index] == [(i, "a800") for i in range(4)] + [
        (4, "h800"),
        (5, "h800"),
    ]
    bare = parse_nvidia_smi("NVIDIA H800, 81559 MiB\nNVIDIA H800, 81559 MiB\n")
    assert [d.index for d in bare] == [0, 1]


@pytest.mark.parametrize("text", ["", "garbage\nno table here\n", "| 0 | x |\n"])
def test_unrecognised_output_lists_no_devices(text: str) -> None:
    assert parse_npu_smi_info(text) == ()
    assert parse_hy_smi_product(text) == ()


def install_tool(folder: Path, name: str, output: str, rc: int = 0) -> None:
    """A stand-in for a vendor tool: prints `output` whatever its arguments, exits `rc`."""
    copy = folder / f"{name}.out"
    copy.write_text(output, encoding="utf-8")
    tool = folder / name
    cat = shutil.which("cat") or "/bin/cat"  # PATH is only `folder` when the probe runs it
    tool.write_text(f"#!/bin/sh\n{cat} {shlex.quote(str(copy))}\nexit {rc}\n")
    tool.chmod(0o755)


def meminfo(folder: Path) -> Path:
    path = folder / "meminfo"
    path.write_text("MemTotal: 2097152 kB\nMemAvailable: 1048576 kB\n")
    return path


def test_host_probe_reports_pools_from_every_installed_tool(tmp_path: Path) -> None:
    install_tool(tmp_path, "npu-smi", sample("npu-smi-info-910b.txt"))
    install_tool(tmp_path, "hy-smi", sample("hy-smi-showproductname-k100ai.txt"))
    install_tool(tmp_path, "nvidia-smi", sample("nvidia-smi-index-name-memory.txt"))
    source = HostSource(meminfo_path=meminfo(tmp_path), env={"PATH": str(tmp_path)})
    assert source.probe().pools == (
        PoolCapacity("910b", 8, 8),
        PoolCapacity("a800", 4, 4),
        PoolCapacity("h800", 2, 2),
        PoolCapacity("k100ai", 4, 4),
    )
    assert {d.vendor for d in source.devices()} == {Vendor.NVIDIA, Vendor.ASCEND, Vendor.HYGON}


def test_a_host_without_vendor_tools_has_no_pools_and_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        snap = HostSource(meminfo_path=meminfo(tmp_path), env={"PATH": str(tmp_path)}).probe()
    assert snap.pools == ()
    assert snap.memory_gb == 2.0
    assert not caplog.records


def test_a_failing_tool_adds_no_devices_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install_tool(tmp_path, "npu-smi", "dcmi module initialize failed. ret is -8005\n", rc=255)
    install_tool(tmp_path, "hy-smi", sample("hy-smi-showproductname-z100.txt"))
    with caplog.at_level(logging.WARNING):
        devices = probe_devices({"PATH": str(tmp_path)})
    assert devices == parse_hy_smi_product(sample("hy-smi-showproductname-z100.txt"))
    assert any("tool=npu-smi rc=255" in r.getMessage() for r in caplog.records)

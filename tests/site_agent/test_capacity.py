"""Capacity sources: parsers on captured command outputs, and the probes at their edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from computenet.types import CapacityReport, PoolCapacity
from site_agent.capacity.base import Usage, apply_drain, apply_usage, mark_federation
from site_agent.capacity.host import (
    HostSource,
    gpu_model_from_name,
    parse_meminfo,
    parse_nvidia_smi,
)
from site_agent.capacity.slurm import (
    SlurmSource,
    parse_gres,
    parse_node_states,
    parse_scontrol_nodes,
    summarize,
)
from site_agent.capacity.static import StaticSource


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA A800-SXM4-80GB", "a800"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA A100-PCIE-40GB", "a100"),
        ("Tesla V100-SXM2-32GB", "v100"),
        ("NVIDIA H800", "h800"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("NVIDIA", ""),
    ],
)
def test_gpu_model_from_name(name: str, model: str) -> None:
    assert gpu_model_from_name(name) == model


NVIDIA_SMI = """NVIDIA A800-SXM4-80GB, 81920 MiB
NVIDIA A800-SXM4-80GB, 81920 MiB
NVIDIA H100 80GB HBM3, 81559 MiB

"""


def test_parse_nvidia_smi_counts_by_model() -> None:
    assert parse_nvidia_smi(NVIDIA_SMI) == (
        PoolCapacity("a800", 2, 2),
        PoolCapacity("h100", 1, 1),
    )
    assert parse_nvidia_smi("") == ()


def test_parse_meminfo() -> None:
    text = "MemTotal:       16777216 kB\nMemFree:  1024 kB\nMemAvailable:    8388608 kB\n"
    assert parse_meminfo(text) == (16.0, 8.0)


def test_host_probe_without_nvidia_smi(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2097152 kB\nMemAvailable: 1048576 kB\n")
    snap = HostSource(meminfo_path=meminfo, env={"PATH": str(tmp_path)}).probe()
    assert snap.pools == ()
    assert snap.cpu_cores >= 1
    assert (snap.memory_gb, snap.memory_gb_free) == (2.0, 1.0)


def test_host_probe_with_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf 'NVIDIA A800-SXM4-80GB, 81920 MiB\\n%.0s' 1 2 3\n")
    fake.chmod(0o755)
    snap = HostSource(env={"PATH": str(tmp_path)}).probe()
    assert snap.pools == (PoolCapacity("a800", 3, 3),)


# Captured from slurm-wlm 22.05 (`scontrol -d show node -o`), plus drained / down variants.
SCONTROL_IDLE = (
    "NodeName=vm Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.35 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:a800:4 NodeAddr=127.0.0.1 "
    "NodeHostName=vm Version=22.05.8 OS=Linux 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0  "
    "RealMemory=23081 AllocMem=0 FreeMem=23302 Sockets=1 Boards=1 State=IDLE ThreadsPerCore=1 "
    "TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=debug  BootTime=2026-11-26T06:53:32 "
    "CfgTRES=cpu=2,mem=23081M,billing=2 AllocTRES= CapWatts=n/a"
)
SCONTROL_CLUSTER = "\n".join(
    [
        "NodeName=g1 CPUAlloc=16 CPUTot=64 RealMemory=512000 AllocMem=128000 "
        "Gres=gpu:a800:8(S:0-1) GresUsed=gpu:a800:3(IDX:0-2) State=MIXED Partitions=gpu,all",
        "NodeName=g2 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:a800:8(S:0-1) GresUsed=gpu:a800:0(IDX:N/A) State=IDLE+DRAIN Partitions=gpu",
        "NodeName=g3 CPUAlloc=0 CPUTot=64 RealMemory=512000 AllocMem=0 "
        "Gres=gpu:h100:4,gpu:a800:2 GresUsed=gpu:h100:0,gpu:a800:0 State=DOWN* Partitions=gpu",
        "NodeName=c1 CPUAlloc=8 CPUTot=32 RealMemory=128000 AllocMem=0 Gres=(null) "
        "GresUsed= State=ALLOCATED Partitions=cpu",
        "NodeName=m1 CPUAlloc=0 CPUTot=32 RealMemory=128000 AllocMem=0 Gres=gpu:4 "
        "State=IDLE+MAINT Partitions=cpu",
    ]
)


@pytest.mark.parametrize(
    ("text", "states"),
    [
        ("IDLE", {"IDLE"}),
        ("IDLE+DRAIN", {"IDLE", "DRAIN"}),
        ("DOWN*", {"DOWN", "NOT_RESPONDING"}),
        ("mixed", {"MIXED"}),
        ("ALLOCATED+MAINT", {"ALLOCATED", "MAINT"}),
    ],
)
def test_parse_node_states(text: str, states: set[str]) -> None:
    assert parse_node_states(text) == states


@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ("gpu:a800:4", {"a800": 4}),
        ("gpu:a800:8(S:0-1)", {"a800": 8}),
        ("gpu:h100:4,gpu:a800:2", {"h100": 4, "a800": 2}),
        ("gpu:a800:3(IDX:0-2)", {"a800": 3}),
        ("gpu:a800:2(IDX:0,2),gpu:h100:1(IDX:1)", {"a800": 2, "h100": 1}),
        ("gpu:4", {"gpu": 4}),
        ("(null)", {}),
        ("", {}),
        ("mps:100", {}),
    ],
)
def test_parse_gres(text: str, counts: dict[str, int]) -> None:
    assert parse_gres(text) == counts


def test_single_idle_node() -> None:
    [node] = parse_scontrol_nodes(SCONTROL_IDLE)
    assert (node.name, node.cpus, node.memory_mb, dict(node.gpus)) == ("vm", 2, 23081, {"a800": 4})
    assert node.available
    snap = summarize([node])
    assert snap.pools == (PoolCapacity("a800", 4, 4, 0, nodes=1, cards_per_node=4),)
    assert snap.cpu_cores == snap.cpu_cores_free == 2.0


def test_drained_down_and_maint_nodes_are_not_allocatable() -> None:
    nodes = parse_scontrol_nodes(SCONTROL_CLUSTER)
    assert [n.available for n in nodes] == [True, False, False, True, False]
    snap = summarize(nodes)
    assert snap.pools == (
        PoolCapacity("a800", 18, 8, 3, nodes=3, cards_per_node=2),
        PoolCapacity("gpu", 4, 0, 0, nodes=1, cards_per_node=4),
        PoolCapacity("h100", 4, 0, 0, nodes=1, cards_per_node=4),
    )
    assert snap.cpu_cores == 256.0
    assert snap.cpu_cores_free == (64 - 16) + (32 - 8)
    assert snap.memory_gb_free == round((512000 - 128000 + 128000) / 1024, 3)


def test_partition_filter() -> None:
    snap = summarize(parse_scontrol_nodes(SCONTROL_CLUSTER), partition="cpu")
    assert snap.pools == (PoolCapacity("gpu", 4, 0, 0, nodes=1, cards_per_node=4),)
    assert snap.cpu_cores == 64.0


def test_static_source_and_usage_and_drain() -> None:
    source = StaticSource([("a800", 8)], cpu_cores=64, memory_gb=512)
    snap = source.probe()
    used = apply_usage(snap, [Usage("a800", 3, 8, 64), Usage("", 1, 1, 1)])
    assert used.pools == (PoolCapacity("a800", 8, 8, 4),)
    assert (used.cpu_cores_free, used.memory_gb_free) == (55.0, 447.0)
    drained = apply_drain(used)
    assert drained.pools == (PoolCapacity("a800", 8, 0, 4),)
    assert drained == CapacityReport(drained.pools, 64, 0.0, 512, 0.0)


def test_federation_share_of_busy_is_reported_per_pool() -> None:
    # a source that sees all usage (Slurm): 6 a800 busy, 4 of them federation attempts
    snap = CapacityReport(
        (PoolCapacity("a800", 8, 8, 6), PoolCapacity("910b", 8, 8, 0)), 64, 40.0, 512, 400.0
    )
    marked = mark_federation(snap, [Usage("a800", 4, 8, 64), Usage("910b", 2, 2, 8)])
    assert [p.federation_in_use for p in marked.pools] == [4, 0], "a queued job holds nothing"
    assert (marked.federation_cpu_cores, marked.federation_memory_gb) == (10.0, 72.0)
    assert [p.in_use_by_others for p in marked.pools] == [2, 0]


def test_own_usage_is_all_federation_on_a_static_site() -> None:
    snap = StaticSource([("a800", 8)], cpu_cores=64, memory_gb=512).probe()
    usage = [Usage("a800", 3, 8, 64)]
    marked = mark_federation(apply_usage(snap, usage), usage)
    assert marked.pools == (PoolCapacity("a800", 8, 8, 3, federation_in_use=3),)
    assert marked.pools[0].in_use_by_others == 0


@pytest.mark.slurm
def test_slurm_source_reports_the_declared_gpus(slurm_cluster) -> None:  # type: ignore[no-untyped-def]
    snap = SlurmSource(env=slurm_cluster.env).probe()
    model, count = slurm_cluster.gpu_type, slurm_cluster.gpu_count
    assert PoolCapacity(model, count, count, 0, nodes=1, cards_per_node=count) in snap.pools
    assert snap.cpu_cores == slurm_cluster.cpus
    partitioned = SlurmSource(env=slurm_cluster.env, partition=slurm_cluster.partition).probe()
    assert partitioned.pools == snap.pools

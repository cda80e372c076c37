"""Accelerator vendors: which vendor a model id belongs to and how its runtimes pick devices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Vendor(StrEnum):
    """Device families whose runtimes select devices through an environment variable."""

    NVIDIA = "nvidia"
    ASCEND = "ascend"
    HYGON = "hygon"
    UNKNOWN = ""
    """A model no prefix below matches: its devices are still handed out one attempt at a time,
    but only COMPUTENET_DEVICES names them."""


# Model ids as the topology (topology/data/china.yaml) and the host probes spell them; the
# topology has no vendor field, so the vendor comes from the id's prefix. Longest prefix wins.
_PREFIXES: dict[str, Vendor] = {
    "a100": Vendor.NVIDIA,
    "a800": Vendor.NVIDIA,
    "h100": Vendor.NVIDIA,
    "h800": Vendor.NVIDIA,
    "h20": Vendor.NVIDIA,  # also h200
    "b200": Vendor.NVIDIA,
    "l20": Vendor.NVIDIA,
    "l40": Vendor.NVIDIA,
    "v100": Vendor.NVIDIA,
    "rtx": Vendor.NVIDIA,
    "4090": Vendor.NVIDIA,
    "910": Vendor.ASCEND,  # 910b, 910c
    "310": Vendor.ASCEND,
    "ascend": Vendor.ASCEND,
    "k100": Vendor.HYGON,  # k100, k100ai
    "z100": Vendor.HYGON,
    "bw1000": Vendor.HYGON,
}

VISIBLE_DEVICES_VARS: dict[Vendor, str] = {
    Vendor.NVIDIA: "CUDA_VISIBLE_DEVICES",
    Vendor.ASCEND: "ASCEND_RT_VISIBLE_DEVICES",
    Vendor.HYGON: "HIP_VISIBLE_DEVICES",
}
"""The variable each vendor's runtime reads to restrict a process to some of its devices."""

DEVICES_VAR = "COMPUTENET_DEVICES"


def vendor_of(model: str) -> Vendor:
    """The vendor of an accelerator model id (`a800` → nvidia, `910b` → ascend); UNKNOWN if none."""
    name = model.strip().lower()
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if name.startswith(prefix):
            return _PREFIXES[prefix]
    return Vendor.UNKNOWN


@dataclass(frozen=True, slots=True, order=True)
class Device:
    """One accelerator of this host: its vendor, the index its runtime knows it by, its model."""

    vendor: Vendor
    index: int
    """The card's number for its vendor's tools (nvidia-smi index, npu-smi NPU id, hy-smi DCU)."""
    model: str
    chips: tuple[int, ...] = ()
    """Runtime device ids of the card when they differ from `index`: an Ascend 910C card is two
    chips, each a device of its own to the runtime."""

    @property
    def slot(self) -> tuple[Vendor, int]:
        """What makes two devices the same device: vendor and index (models never overlap)."""
        return (self.vendor, self.index)

    @property
    def runtime_ids(self) -> tuple[int, ...]:
        """The ids the vendor's runtime (and its visible-devices variable) knows this card by."""
        return self.chips or (self.index,)


def device_env(assigned: Iterable[Device], present: Iterable[Vendor]) -> dict[str, str]:
    """The variables that confine an attempt to `assigned`.

    COMPUTENET_DEVICES lists the runtime ids; every vendor with devices on this host (`present`)
    gets its visible-devices variable, empty when the attempt has none of that vendor's devices,
    so a job never sees a device that was not given to it.
    """
    mine = sorted(assigned)
    vendors = {v for v in present if v is not Vendor.UNKNOWN} | {
        d.vendor for d in mine if d.vendor is not Vendor.UNKNOWN
    }
    env = {DEVICES_VAR: _joined(d.runtime_ids for d in mine)}
    for vendor in sorted(vendors):
        env[VISIBLE_DEVICES_VARS[vendor]] = _joined(
            d.runtime_ids for d in mine if d.vendor is vendor
        )
    if Vendor.NVIDIA in vendors:
        # CUDA numbers devices fastest-first unless told otherwise; nvidia-smi numbers them by
        # PCI bus, and the indices here are nvidia-smi's.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def _joined(ids: Iterable[tuple[int, ...]]) -> str:
    return ",".join(str(i) for group in ids for i in group)

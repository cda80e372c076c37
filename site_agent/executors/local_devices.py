"""The local executor's devices: each attempt's share of the host, kept in its folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from computenet.spec import JobSpec
from site_agent.devices.allocator import DeviceAllocator, DevicesUnavailableError
from site_agent.devices.vendors import Device, Vendor, device_env
from site_agent.executors.base import ExecutorError, write_atomic
from site_agent.records import AttemptKey

log = logging.getLogger(__name__)

DEVICES_FILE = "devices.json"
"""Written before the attempt's process starts, so a restarted agent knows what it holds."""


class AttemptDevices:
    """Assigns devices to attempts and records them; with no inventory it assigns nothing."""

    def __init__(self, inventory: Sequence[Device] | None) -> None:
        self._allocator = DeviceAllocator(inventory) if inventory is not None else None

    def acquire(self, key: AttemptKey, spec: JobSpec, folder: Path) -> dict[str, str]:
        """Give the attempt its devices, record them in its folder, and return the variables
        that confine it to them; raise ExecutorError if the host has too few free."""
        if self._allocator is None:
            return {}
        try:
            devices = self._allocator.assign(
                key, spec.resources.accelerator, spec.accelerators_total
            )
        except DevicesUnavailableError as exc:
            raise ExecutorError(f"no devices for the attempt: {exc}") from None
        try:
            write_atomic(folder / DEVICES_FILE, _dump(devices))
        except OSError as exc:
            self._allocator.free(key)
            raise ExecutorError(f"cannot record the devices: {exc.strerror or exc}") from None
        log.info(
            "devices assigned job_id=%s attempt=%d devices=%s", *key, _shown(devices) or "none"
        )
        return device_env(devices, self._allocator.vendors)

    def readopt(self, key: AttemptKey, folder: Path) -> None:
        """Hold again what an attempt launched by an earlier agent process was given."""
        if self._allocator is None or key in self._allocator.holders:
            return
        devices = _load(folder / DEVICES_FILE)
        if not devices:
            return
        restored = self._allocator.restore(key, devices)
        if restored.refused:
            log.warning(
                "devices not restored job_id=%s attempt=%d devices=%s "
                "(no longer on this host, or held by another attempt)",
                *key,
                _shown(restored.refused),
            )
        log.info("devices restored job_id=%s attempt=%d devices=%s", *key, _shown(restored.held))

    def release(self, key: AttemptKey) -> None:
        """The attempt ended: its devices are free for others."""
        if self._allocator is not None and self._allocator.free(key):
            log.info("devices freed job_id=%s attempt=%d", *key)

    def held(self, key: AttemptKey) -> tuple[Device, ...]:
        """What the attempt holds now."""
        return self._allocator.held_by(key) if self._allocator is not None else ()


def _dump(devices: Sequence[Device]) -> str:
    rows = [
        {"vendor": d.vendor.value, "index": d.index, "model": d.model, "chips": list(d.chips)}
        for d in devices
    ]
    return json.dumps({"devices": rows})


def _load(path: Path) -> tuple[Device, ...]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["devices"]
        return tuple(
            Device(Vendor(r["vendor"]), int(r["index"]), str(r["model"]), tuple(r["chips"]))
            for r in rows
        )
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the attempt's devices path=%s error=%s", path, exc)
        return ()


def _shown(devices: Sequence[Device]) -> str:
    return ",".join(f"{d.vendor.value or 'device'}:{d.index}" for d in devices)

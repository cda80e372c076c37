"""Which attempt holds which devices: a pure allocator over one host's device inventory."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from site_agent.devices.vendors import Device, Vendor


class DevicesUnavailableError(RuntimeError):
    """Not enough free devices of the model asked for; the message says how many there are."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What an attempt got back after a restart: the devices it holds again, and those it could
    not (no longer on this host, or already held by another attempt)."""

    held: tuple[Device, ...]
    refused: tuple[Device, ...]


class DeviceAllocator:
    """Hands out devices of a fixed inventory to attempts; no device is held by two attempts.

    Invariants (checked by the property tests): every held device is in the inventory, no
    device is held by two keys, and a key holds exactly what `assign` or `restore` gave it until
    `free`. Devices are chosen lowest index first within the model's pool, so assignments are
    deterministic and neighbouring cards tend to go together.
    """

    def __init__(self, inventory: Iterable[Device]) -> None:
        self._inventory: dict[tuple[Vendor, int], Device] = {}
        for device in inventory:
            if device.slot in self._inventory:
                raise ValueError(f"device {device.vendor or '?'}:{device.index} listed twice")
            self._inventory[device.slot] = device
        self._holders: dict[Hashable, tuple[Device, ...]] = {}
        self._held: dict[tuple[Vendor, int], Hashable] = {}

    @property
    def inventory(self) -> tuple[Device, ...]:
        """Every device of the host, in order."""
        return tuple(sorted(self._inventory.values()))

    @property
    def vendors(self) -> frozenset[Vendor]:
        """The vendors with devices on this host."""
        return frozenset(d.vendor for d in self._inventory.values())

    @property
    def holders(self) -> Mapping[Hashable, tuple[Device, ...]]:
        """Devices by the key holding them (keys holding none are absent)."""
        return dict(self._holders)

    def held_by(self, key: Hashable) -> tuple[Device, ...]:
        """The devices `key` holds (empty if none)."""
        return self._holders.get(key, ())

    def free_devices(self, model: str) -> tuple[Device, ...]:
        """Devices of `model` nobody holds, lowest index first."""
        return tuple(d for d in self.inventory if d.model == model and d.slot not in self._held)

    def models(self) -> tuple[str, ...]:
        """The models in the inventory, sorted."""
        return tuple(sorted({d.model for d in self._inventory.values()}))

    def assign(self, key: Hashable, model: str, count: int) -> tuple[Device, ...]:
        """Give `key` `count` free devices of `model` (of the first model with enough free if
        `model` is empty); raise DevicesUnavailableError if there are not enough."""
        if key in self._holders:
            raise ValueError(f"{key!r} already holds devices")
        if count < 0:
            raise ValueError("count must not be negative")
        if count == 0:
            return ()
        candidates = [model] if model else list(self.models())
        for name in candidates:
            free = self.free_devices(name)
            if len(free) >= count:
                return self._take(key, free[:count])
        raise DevicesUnavailableError(self._shortage(model, count))

    def restore(self, key: Hashable, devices: Iterable[Device]) -> Restored:
        """Let `key` hold `devices` again (after an agent restart), as far as they are still on
        this host and free; anything else is refused rather than shared."""
        if key in self._holders:
            raise ValueError(f"{key!r} already holds devices")
        held: list[Device] = []
        refused: list[Device] = []
        for device in sorted(set(devices)):
            known = self._inventory.get(device.slot)
            if known is None or device.slot in self._held or known in held:
                refused.append(device)
            else:
                held.append(known)
        if held:
            self._take(key, tuple(held))
        return Restored(tuple(held), tuple(refused))

    def free(self, key: Hashable) -> tuple[Device, ...]:
        """Release what `key` holds; returns it (empty if it held nothing)."""
        devices = self._holders.pop(key, ())
        for device in devices:
            del self._held[device.slot]
        return devices

    def _take(self, key: Hashable, devices: tuple[Device, ...]) -> tuple[Device, ...]:
        self._holders[key] = devices
        for device in devices:
            self._held[device.slot] = key
        return devices

    def _shortage(self, model: str, count: int) -> str:
        if not self._inventory:
            return f"this host has no accelerator devices; the attempt asks for {count}"
        if model and not any(d.model == model for d in self._inventory.values()):
            have = ", ".join(self.models())
            return f"this host has no {model} devices (it has {have}); the attempt asks for {count}"
        what = model or "any one model"
        free = (
            len(self.free_devices(model))
            if model
            else max(len(self.free_devices(m)) for m in self.models())
        )
        return f"{count} {what} devices asked for, {free} free on this host"

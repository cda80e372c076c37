"""The device inventory the local executor hands out: from the config's pools or the host probe."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from site_agent.capacity.host import HostSource
from site_agent.config import AgentConfig
from site_agent.devices.vendors import Device, Vendor, vendor_of

log = logging.getLogger(__name__)


def static_inventory(pools: Sequence[tuple[str, int]]) -> tuple[Device, ...]:
    """Devices for declared pools: each vendor's cards numbered from 0 in the order declared.

    Two pools of one vendor on one host share that vendor's numbering (`a800: 4, h800: 4` are
    CUDA devices 0-3 and 4-7), as the vendor's runtime would number them.
    """
    next_index: dict[Vendor, int] = {}
    devices: list[Device] = []
    for model, count in pools:
        vendor = vendor_of(model)
        start = next_index.get(vendor, 0)
        devices += [Device(vendor, start + i, model) for i in range(count)]
        next_index[vendor] = start + count
    return tuple(devices)


def inventory_for(
    cfg: AgentConfig, env: Mapping[str, str] | None = None
) -> tuple[Device, ...] | None:
    """The devices local attempts are given, by the capacity source; None where the agent cannot
    know them (a Slurm capacity source: Slurm assigns its own devices)."""
    cap = cfg.capacity
    if cap.source == "static":
        return static_inventory([(p.model, p.count) for p in cap.pools])
    if cap.source == "host":
        devices = HostSource(env=env).devices()
        log.info(
            "device inventory probed devices=%s",
            ",".join(f"{d.model}:{d.index}" for d in devices) or "none",
        )
        return devices
    log.warning("no device isolation: the %s capacity source lists no devices", cap.source)
    return None

"""The device allocator (a pure core) and the vendor table: who holds which device, and what an
attempt's environment says about it."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from site_agent.devices.allocator import DeviceAllocator, DevicesUnavailableError
from site_agent.devices.inventory import static_inventory
from site_agent.devices.vendors import Device, Vendor, device_env, vendor_of
from topology.loader import default_topology

A800 = [Device(Vendor.NVIDIA, i, "a800") for i in range(4)]
NPUS = [Device(Vendor.ASCEND, i, "910b") for i in range(2)]


def test_assign_takes_lowest_free_indices_and_free_gives_them_back() -> None:
    alloc = DeviceAllocator(A800)
    assert alloc.assign("j1", "a800", 2) == tuple(A800[:2])
    assert alloc.assign("j2", "a800", 1) == (A800[2],)
    assert alloc.free("j1") == tuple(A800[:2])
    assert alloc.assign("j3", "a800", 3) == (A800[0], A800[1], A800[3])
    assert alloc.free("nobody") == ()


def test_too_few_free_devices_is_an_error_that_changes_nothing() -> None:
    alloc = DeviceAllocator(A800)
    alloc.assign("j1", "a800", 3)
    with pytest.raises(DevicesUnavailableError, match="2 a800 devices asked for, 1 free"):
        alloc.assign("j2", "a800", 2)
    assert alloc.holders == {"j1": tuple(A800[:3])}
    with pytest.raises(DevicesUnavailableError, match="no 910b devices"):
        alloc.assign("j3", "910b", 1)
    with pytest.raises(DevicesUnavailableError, match="no accelerator devices"):
        DeviceAllocator([]).assign("j4", "a800", 1)


def test_an_empty_model_takes_the_first_model_with_enough_free_and_zero_takes_nothing() -> None:
    alloc = DeviceAllocator(A800 + NPUS)
    assert alloc.assign("j1", "", 2) == tuple(NPUS)  # "910b" sorts before "a800"
    assert alloc.assign("j2", "", 3) == tuple(A800[:3])
    assert alloc.assign("j3", "a800", 0) == ()
    assert "j3" not in alloc.holders


def test_restore_holds_again_what_is_free_and_refuses_the_rest() -> None:
    alloc = DeviceAllocator(A800)
    alloc.assign("j1", "a800", 1)
    stale = Device(Vendor.NVIDIA, 9, "a800")
    restored = alloc.restore("j2", [A800[0], A800[2], stale])
    assert restored.held == (A800[2],)
    assert restored.refused == (A800[0], stale)
    assert alloc.held_by("j2") == (A800[2],)
    with pytest.raises(ValueError, match="already holds"):
        alloc.assign("j2", "a800", 1)


def test_an_inventory_cannot_list_a_device_twice() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        DeviceAllocator([A800[0], Device(Vendor.NVIDIA, 0, "h800")])


def test_every_topology_model_with_a_known_vendor_maps_to_it() -> None:
    models = {p.model for site in default_topology().sites for p in site.pools}
    vendors = {m: vendor_of(m) for m in models}
    assert vendors == {
        "a800": Vendor.NVIDIA,
        "h800": Vendor.NVIDIA,
        "h20": Vendor.NVIDIA,
        "910b": Vendor.ASCEND,
        "910c": Vendor.ASCEND,
        "k100ai": Vendor.HYGON,
        # the topology says its vendor is not reported: its devices get COMPUTENET_DEVICES only
        "domestic-infer": Vendor.UNKNOWN,
    }
    assert [vendor_of(m) for m in ("A100", "h100", "rtx4090", "z100", "310p")] == [
        Vendor.NVIDIA,
        Vendor.NVIDIA,
        Vendor.NVIDIA,
        Vendor.HYGON,
        Vendor.ASCEND,
    ]


def test_device_env_names_the_devices_and_hides_the_other_vendors() -> None:
    a3 = Device(Vendor.ASCEND, 1, "910c", chips=(2, 3))
    present = {Vendor.NVIDIA, Vendor.ASCEND}
    assert device_env([a3], present) == {
        "COMPUTENET_DEVICES": "2,3",
        "ASCEND_RT_VISIBLE_DEVICES": "2,3",
        "CUDA_VISIBLE_DEVICES": "",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert device_env([], {Vendor.HYGON}) == {"COMPUTENET_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}
    unknown = Device(Vendor.UNKNOWN, 0, "domestic-infer")
    assert device_env([unknown], {Vendor.UNKNOWN}) == {"COMPUTENET_DEVICES": "0"}


def test_static_pools_number_each_vendor_from_zero_in_declared_order() -> None:
    devices = static_inventory([("a800", 2), ("910b", 2), ("h800", 1)])
    assert [(d.vendor, d.index, d.model) for d in devices] == [
        (Vendor.NVIDIA, 0, "a800"),
        (Vendor.NVIDIA, 1, "a800"),
        (Vendor.ASCEND, 0, "910b"),
        (Vendor.ASCEND, 1, "910b"),
        (Vendor.NVIDIA, 2, "h800"),
    ]


MODELS = ("a800", "910b", "k100ai")
INVENTORY = static_inventory([("a800", 5), ("910b", 3), ("k100ai", 2)])


class AllocatorMachine(RuleBasedStateMachine):
    """Random assign / restore / free sequences against a model of who should hold what."""

    def __init__(self) -> None:
        super().__init__()
        self.alloc = DeviceAllocator(INVENTORY)
        self.expected: dict[str, tuple[Device, ...]] = {}
        self.next_key = 0

    def _key(self) -> str:
        self.next_key += 1
        return f"job-{self.next_key}"

    @rule(model=st.sampled_from((*MODELS, "")), count=st.integers(0, 6))
    def assign(self, model: str, count: int) -> None:
        key = self._key()
        free = {m: len(self.alloc.free_devices(m)) for m in MODELS}
        try:
            got = self.alloc.assign(key, model, count)
        except DevicesUnavailableError:
            # refused only when no eligible model had enough free
            assert all(free[m] < count for m in ([model] if model else MODELS))
            return
        assert len(got) == count
        assert len({d.model for d in got}) <= 1
        assert not model or all(d.model == model for d in got)
        if got:
            self.expected[key] = got

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        wanted = data.draw(st.lists(st.sampled_from(INVENTORY), max_size=4))
        key = self._key()
        busy = {d.slot for held in self.expected.values() for d in held}
        restored = self.alloc.restore(key, wanted)
        assert {d.slot for d in restored.held}.isdisjoint(busy)
        assert set(restored.held) | set(restored.refused) == set(wanted)
        if restored.held:
            self.expected[key] = restored.held

    @precondition(lambda self: bool(self.expected))
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.expected)))
        assert self.alloc.free(key) == self.expected.pop(key)

    @invariant()
    def holds_what_was_given(self) -> None:
        assert self.alloc.holders == self.expected

    @invariant()
    def no_device_is_held_twice_or_invented(self) -> None:
        held = [d.slot for devices in self.alloc.holders.values() for d in devices]
        assert len(held) == len(set(held))
        assert set(held) <= {d.slot for d in INVENTORY}
        for model in MODELS:
            in_use = sum(d.model == model for ds in self.alloc.holders.values() for d in ds)
            pool = sum(d.model == model for d in INVENTORY)
            assert in_use + len(self.alloc.free_devices(model)) == pool


AllocatorMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
test_allocator_properties = AllocatorMachine.TestCase

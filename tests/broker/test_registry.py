"""Site liveness: active -> suspect -> lost by heartbeat TTL, with a grace period at start."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from broker.sites.registry import SiteRegistry, StatusChange, report_from_json, report_to_json
from computenet.types import CapacityReport, PoolCapacity, SiteId, SiteStatus

A = SiteId("a")
B = SiteId("b")


def registry(now: float = 0.0) -> SiteRegistry:
    return SiteRegistry(
        [(A, "A", "p", "east"), (B, "B", "q", "west")],
        suspect_after_s=10,
        lost_after_s=30,
        now_s=now,
    )


def test_sites_start_offline_and_become_active_on_hello() -> None:
    reg = registry()
    assert reg.get(A).status == SiteStatus.OFFLINE
    change = reg.connected(A, now_s=1, executor="local", version="1", epoch="e")
    assert change == StatusChange(A, SiteStatus.OFFLINE, SiteStatus.ACTIVE)
    assert reg.get(A).connected


def test_a_hello_says_whether_the_site_moves_checkpoints_and_a_later_one_may_change_it() -> None:
    reg = registry()
    assert not reg.get(A).checkpoints, "unknown until the agent says so"
    reg.connected(A, now_s=1, executor="local", version="1", epoch="e", checkpoints=True)
    assert reg.get(A).checkpoints
    reg.connected(A, now_s=2, executor="local", version="1", epoch="f", checkpoints=False)
    assert not reg.get(A).checkpoints


def test_silence_makes_suspect_then_lost() -> None:
    reg = registry()
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    assert reg.tick(9) == []
    assert reg.tick(11) == [StatusChange(A, SiteStatus.ACTIVE, SiteStatus.SUSPECT)]
    assert reg.tick(20) == []
    changes = reg.tick(31)
    assert StatusChange(A, SiteStatus.SUSPECT, SiteStatus.LOST) in changes


def test_report_revives_a_suspect_site() -> None:
    reg = registry()
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    reg.tick(11)
    change = reg.reported(A, CapacityReport(), now_s=12, now_unix_ms=12_000)
    assert change == StatusChange(A, SiteStatus.SUSPECT, SiteStatus.ACTIVE)
    assert reg.get(A).last_report_unix_ms == 12_000


def test_grace_after_restart_never_connected_site_is_lost_only_after_lost_timeout() -> None:
    reg = registry(now=100)
    assert reg.tick(125) == []
    changes = reg.tick(131)
    assert {c.site_id for c in changes} == {A, B}
    assert all(c.new == SiteStatus.LOST for c in changes)


def test_drain_and_undrain_of_an_active_site() -> None:
    reg = registry()
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    assert reg.set_drained(A, True) == StatusChange(A, SiteStatus.ACTIVE, SiteStatus.DRAINING)
    reg.reported(A, CapacityReport(), now_s=1, now_unix_ms=1)
    assert reg.get(A).status == SiteStatus.DRAINING
    assert reg.set_drained(A, False) == StatusChange(A, SiteStatus.DRAINING, SiteStatus.ACTIVE)


def test_report_json_round_trip() -> None:
    report = CapacityReport(
        pools=(PoolCapacity("a800", 8, 7, 2),),
        cpu_cores=64,
        cpu_cores_free=60,
        memory_gb=512,
        memory_gb_free=500,
    )
    assert report_from_json(report_to_json(report)) == report
    assert report_from_json("") == CapacityReport()
    live = replace(report, price_cny_per_kwh=0.31, carbon_kg_per_kwh=0.5)
    assert report_from_json(report_to_json(live)) == live


def test_report_json_keeps_node_shapes_and_reads_records_without_them() -> None:
    report = CapacityReport(
        pools=(
            PoolCapacity("a800", 8, 8, 3, 2, nodes=2, cards_per_node=4),
            PoolCapacity("910b", 16, 16, 1),
        ),
        cpu_cores=64,
        memory_gb=512,
    )
    text = report_to_json(report)
    assert report_from_json(text) == report
    older = '{"pools": [["a800", 8, 8, 3, 2]], "cpu": [64, 60], "mem": [512, 500]}'
    (pool,) = report_from_json(older).pools
    assert (pool.nodes, pool.cards_per_node, pool.federation_in_use) == (0, 0, 2)


@given(
    st.lists(
        st.builds(
            PoolCapacity,
            st.sampled_from(["a800", "910b", "h20"]),
            st.integers(0, 64),
            st.integers(0, 64),
            st.integers(0, 64),
            st.integers(0, 64),
            nodes=st.integers(0, 16),
            cards_per_node=st.integers(0, 16),
        ),
        max_size=4,
    )
)
def test_report_json_round_trips_any_pools(pools: list[PoolCapacity]) -> None:
    report = CapacityReport(pools=tuple(pools), cpu_cores=8, memory_gb=32)
    assert report_from_json(report_to_json(report)) == report


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 50)), max_size=40))
def test_status_always_follows_the_ttl(steps: list[tuple[bool, float]]) -> None:
    """After any sequence of reports and silences, the status matches the time since last seen."""
    reg = registry()
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    now = 0.0
    last_seen = 0.0
    for report, gap in steps:
        now += gap
        if report:
            reg.reported(A, CapacityReport(), now_s=now, now_unix_ms=int(now * 1000))
            last_seen = now
        else:
            reg.tick(now)
        status = reg.get(A).status
        silent = now - last_seen
        if report:
            assert status == SiteStatus.ACTIVE
        elif silent > 30:
            assert status == SiteStatus.LOST
        elif silent > 10:
            assert status in (SiteStatus.SUSPECT, SiteStatus.LOST)


def test_heartbeats_without_capacity_keep_the_site_alive_with_its_last_good_report() -> None:
    reg = registry()
    good = CapacityReport(pools=(PoolCapacity("a800", 8, 8, 0),), cpu_cores=64)
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    reg.heartbeat(A, good, now_s=1, now_unix_ms=1000)
    for second in range(2, 300):  # five minutes of failing probes, a heartbeat a second
        assert reg.heartbeat(A, None, error="scontrol: down", now_s=second, now_unix_ms=0) is None
        assert [c for c in reg.tick(second + 0.5) if c.site_id == A] == []
    entry = reg.get(A)
    assert entry.status == SiteStatus.ACTIVE
    assert entry.report == good and entry.capacity_unix_ms == 1000
    info = reg.info(A)
    assert (info.capacity_stale, info.capacity_error) == (True, "scontrol: down")
    assert info.pools == good.pools


def test_stale_capacity_withholds_new_work_only_after_the_configured_time() -> None:
    reg = SiteRegistry(
        [(A, "A", "p", "east")],
        suspect_after_s=10,
        lost_after_s=30,
        now_s=0,
        stale_capacity_after_s=20,
    )
    reg.connected(A, now_s=0, executor="local", version="1", epoch="e")
    reg.heartbeat(A, CapacityReport(cpu_cores=8), now_s=0, now_unix_ms=0)
    assert not reg.capacity_withheld(reg.get(A), 100)
    reg.heartbeat(A, None, error="probe failed", now_s=5, now_unix_ms=0)
    reg.heartbeat(A, None, error="probe failed", now_s=24, now_unix_ms=0)
    assert reg.get(A).capacity_stale
    assert not reg.capacity_withheld(reg.get(A), 25)  # stale since 5 s: 20 s not yet over
    assert reg.capacity_withheld(reg.get(A), 25.5)
    reg.heartbeat(A, CapacityReport(cpu_cores=8), now_s=26, now_unix_ms=0)
    assert not reg.get(A).capacity_stale and not reg.capacity_withheld(reg.get(A), 100)

"""`computenet-agent check` as a preflight: each verdict from real files, commands and brokers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from site_agent import preflight_probes as probes
from site_agent.config import load_config
from site_agent.link import PreflightAnswer
from site_agent.preflight import (
    EXPIRY_WARNING,
    SKEW_FAIL_MS,
    SKEW_WARN_MS,
    Verdict,
    brokers,
    clock,
    validity,
)
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_broker

SITE = "zhangjiakou"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def config(folder: Path, **extra: object) -> Path:
    data: dict[str, object] = {
        "site": SITE,
        "broker": "127.0.0.1:50051",
        "capacity": {"source": "static", "pools": [{"model": "a800", "count": 8}]},
        "executor": {"kind": "local"},
        "state_dir": str(folder / "state"),
        **extra,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def check(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", "check", "--config", "agent.yaml", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines(proc: subprocess.CompletedProcess[str], name: str) -> list[str]:
    """The check lines of one name, e.g. every `tls` line."""
    return [line for line in proc.stdout.splitlines() if line[6:].split(" ", 1)[0] == name]


# -- pure verdicts --------------------------------------------------------------------------


@given(st.integers(min_value=-400, max_value=400))
def test_certificate_validity_by_days_left(days: int) -> None:
    not_after = NOW + timedelta(days=days, hours=1)
    got = validity("cert", NOW - timedelta(days=500), not_after, NOW)
    if not_after <= NOW:
        assert got.verdict is Verdict.FAIL and "expired on" in got.detail
    elif not_after - NOW < EXPIRY_WARNING:
        assert got.verdict is Verdict.WARN and "renew it soon" in got.detail
    else:
        assert got.verdict is Verdict.PASS
    assert validity("cert", NOW + timedelta(minutes=5), not_after, NOW).verdict is Verdict.FAIL


def answer(skew_ms: int, round_trip_ms: int = 4, site: str = SITE, known: bool = True):
    sent = 1_800_000_000_000
    received = sent + round_trip_ms
    return PreflightAnswer(sent + round_trip_ms // 2 + skew_ms, site, known, sent, received)


@given(
    skew=st.integers(min_value=-10 * SKEW_FAIL_MS, max_value=10 * SKEW_FAIL_MS),
    round_trip=st.integers(min_value=0, max_value=5_000),
)
def test_clock_skew_beyond_the_round_trip_is_judged(skew: int, round_trip: int) -> None:
    got = clock("b:1", answer(skew, round_trip))
    unexplained = abs(skew) - (round_trip // 2 + 1)
    expected = (
        Verdict.FAIL
        if unexplained > SKEW_FAIL_MS
        else Verdict.WARN
        if unexplained > SKEW_WARN_MS
        else Verdict.PASS
    )
    assert got.verdict is expected
    assert f"{skew:+d} ms" in got.detail


def test_one_answering_broker_is_enough_but_a_wrong_site_is_not() -> None:
    down = "broker a:1 unreachable (UNAVAILABLE: Connection refused)"
    got = brokers(SITE, {"a:1": down, "b:1": answer(0)})
    assert [(c.verdict, c.name) for c in got] == [
        (Verdict.WARN, "broker"),
        (Verdict.PASS, "broker"),
        (Verdict.PASS, "clock"),
    ]
    assert [c.verdict for c in brokers(SITE, {"a:1": down})] == [Verdict.FAIL]
    other = brokers(SITE, {"b:1": answer(0, site="wuhu")})[0]
    assert other.verdict is Verdict.FAIL and "for site 'wuhu'" in other.detail
    unknown = brokers(SITE, {"b:1": answer(0, known=False)})[0]
    assert unknown.verdict is Verdict.FAIL and "does not know site" in unknown.detail


# -- files and commands ---------------------------------------------------------------------


def self_signed(folder: Path, days: float, site: str = SITE) -> dict[str, str]:
    """A CA-less site certificate (its own CA) valid from a year ago for `days` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=365))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://computenet/site/{site}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{site}.pem", folder / f"{site}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"ca": str(cert_path), "cert": str(cert_path), "key": str(key_path)}


def test_tls_files_expired_soon_to_expire_and_mismatched(tmp_path: Path) -> None:
    expired = probes.tls(load_config(config(tmp_path, tls=self_signed(tmp_path, -1))))
    assert {c.verdict for c in expired} == {Verdict.FAIL}
    assert all("expired on" in c.detail for c in expired)
    soon = probes.tls(load_config(config(tmp_path, tls=self_signed(tmp_path, 10))))
    assert {c.verdict for c in soon} == {Verdict.WARN}
    mine, theirs = self_signed(tmp_path, 400), self_signed(tmp_path, 400, site="wuhu")
    mixed = probes.tls(load_config(config(tmp_path, tls={**mine, "key": theirs["key"]})))
    assert [c.detail for c in mixed if c.verdict is Verdict.FAIL] == [
        f"key {theirs['key']} does not match the certificate"
    ]
    missing = probes.tls(load_config(config(tmp_path, tls={**mine, "ca": "/nonexistent.pem"})))
    assert "CA certificate /nonexistent.pem: No such file or directory" in [
        c.detail for c in missing if c.verdict is Verdict.FAIL
    ]


def test_slurm_commands_and_munge(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, executor={"kind": "slurm"}))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    (got,) = probes.slurm(cfg, {"PATH": str(empty)})
    assert got.verdict is Verdict.FAIL
    assert got.detail == "not on PATH: sbatch, squeue, scontrol, scancel"
    assert probes.munge({"PATH": str(empty)}).verdict is Verdict.WARN
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    for name, body in (("munge", "echo MUNGE:cred"), ("unmunge", "echo 'unmunge: Error: "
                       "Invalid credential' >&2; exit 1")):  # fmt: skip
        script = broken / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    bad = probes.munge({"PATH": str(broken)})
    assert bad.verdict is Verdict.FAIL
    assert bad.detail == "unmunge: unmunge: Error: Invalid credential"
    local = load_config(config(tmp_path))
    assert [c.verdict for c in probes.slurm(local, {"PATH": str(empty)})] == [Verdict.SKIP]


def test_state_dir_that_cannot_be_made_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert probes.state_dir(blocker).verdict is Verdict.FAIL
    assert probes.state_dir(tmp_path / "new" / "state").detail.endswith("will be created")


# -- against a real broker ------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[BrokerProcess]:
    started = start_broker(tmp_path, pki=pki)
    yield started
    started.proc.kill()
    started.proc.wait(timeout=10)


def test_connect_passes_with_the_sites_certificate(
    tmp_path: Path, pki: Pki, broker: BrokerProcess
) -> None:
    config(tmp_path, broker=broker.agent_address, tls=pki.site_tls(SITE))
    proc = check(tmp_path, "--connect")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    assert [line[:4] for line in lines(proc, "tls")] == ["PASS", "PASS"]
    (reached,) = lines(proc, "broker")
    assert reached.startswith(f"PASS  broker       {broker.agent_address} answers and knows site")
    (skew,) = lines(proc, "clock")
    assert skew.startswith(f"PASS  clock        broker {broker.agent_address} clock is")


def test_connect_names_a_certificate_of_another_site(
    tmp_path: Path, pki: Pki, broker: BrokerProcess
) -> None:
    config(tmp_path, broker=broker.agent_address, tls=pki.site_tls("wuhu"))
    proc = check(tmp_path, "--connect")
    assert proc.returncode == 1
    assert "the certificate names spiffe://computenet/site/wuhu, not site 'zhangjiakou'" in (
        proc.stdout
    )
    assert f"FAIL  broker       {broker.agent_address} takes this agent for site 'wuhu'" in (
        proc.stdout
    )
    assert proc.stderr == "computenet-agent: error: 2 checks failed: tls, broker\n"


def test_connect_names_a_site_the_broker_does_not_know(
    tmp_path: Path, pki: Pki, broker: BrokerProcess
) -> None:
    path = config(tmp_path, broker=broker.agent_address, tls=pki.site_tls("atlantis"))
    path.write_text(path.read_text().replace(SITE, "atlantis"))
    proc = check(tmp_path, "--connect")
    assert proc.returncode == 1
    assert lines(proc, "broker") == [
        f"FAIL  broker       {broker.agent_address} does not know site 'atlantis' (topology)"
    ]


def test_a_local_site_passes_without_connect(tmp_path: Path) -> None:
    config(tmp_path)
    proc = check(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line[:4] for line in proc.stdout.splitlines()[1:]] == [
        "PASS", "PASS", "PASS", "SKIP", "PASS", "SKIP", "SKIP"
    ]  # fmt: skip

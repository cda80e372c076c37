"""The probes behind `computenet-agent check`: files, certificates, Slurm and munge commands, the
capacity source, the checkpoint store and the brokers, each turned into preflight lines."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from computenet.errors import ComputeNetError
from computenet.types import CapacityReport
from site_agent import preflight
from site_agent.config import AgentConfig, TlsConfig
from site_agent.preflight import Check, Outcome, Verdict

SITE_URI = "spiffe://computenet/site/"
"""How a site certificate names its site (one URI SAN), as the broker's CA issues it."""

SLURM_REQUIRED = ("sbatch", "squeue", "scontrol", "scancel")
COMMAND_TIMEOUT_S = 15.0


def state_dir(path: Path) -> Check:
    """The state directory exists and is writable, or can be created."""
    if path.exists():
        if not path.is_dir():
            return Check(Verdict.FAIL, "state_dir", f"{path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            return Check(Verdict.FAIL, "state_dir", f"{path} is not writable by this user")
        return Check(Verdict.PASS, "state_dir", f"{path} is writable")
    parent = next((p for p in path.parents if p.exists()), Path("/"))
    if os.access(parent, os.W_OK | os.X_OK):
        return Check(Verdict.PASS, "state_dir", f"{path} will be created")
    return Check(Verdict.FAIL, "state_dir", f"{path} is missing and {parent} is not writable")


def tls(cfg: AgentConfig, now: datetime | None = None) -> list[Check]:
    """The CA, certificate and key: readable, valid now and for a while, naming this site."""
    if cfg.tls is None:
        from computenet.address import parse_address

        if all(parse_address(a).is_loopback for a in cfg.brokers):
            return [Check(Verdict.PASS, "tls", "none: plaintext to a loopback broker (demos)")]
        return [
            Check(
                Verdict.FAIL,
                "tls",
                "no tls section: a broker off this host accepts agents only over mutual TLS",
            )
        ]
    try:
        import cryptography  # noqa: F401
    except ImportError:  # the [agent] extra brings it; a bare install may not have it
        unread = "not checked: install cryptography to read certificates"
        return [Check(Verdict.WARN, "tls", unread)]
    return _certificates(cfg.tls, cfg.site, now or datetime.now(UTC))


def _certificates(section: TlsConfig, site: str, now: datetime) -> list[Check]:
    from cryptography import x509 as x
    from cryptography.hazmat.primitives import serialization as s

    checks: list[Check] = []
    loaded: dict[str, x.Certificate] = {}
    for what, path in (("CA certificate", section.ca), ("site certificate", section.cert)):
        try:
            cert = x.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            checks.append(Check(Verdict.FAIL, "tls", f"{what} {path}: {_reason(exc)}"))
            continue
        loaded[what] = cert
        checks.append(
            preflight.validity(
                f"{what} {path}", cert.not_valid_before_utc, cert.not_valid_after_utc, now
            )
        )
    try:
        key = s.load_pem_private_key(section.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return [*checks, Check(Verdict.FAIL, "tls", f"key {section.key}: {_reason(exc)}")]
    site_cert = loaded.get("site certificate")
    if site_cert is None:
        return checks
    raw = s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != site_cert.public_key().public_bytes(*raw):
        mismatch = f"key {section.key} does not match the certificate"
        checks.append(Check(Verdict.FAIL, "tls", mismatch))
    try:
        sans = site_cert.extensions.get_extension_for_class(x.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x.UniformResourceIdentifier)
    except x.ExtensionNotFound:
        uris = []
    if uris != [f"{SITE_URI}{site}"]:
        named = ", ".join(uris) or "no site"
        checks.append(
            Check(Verdict.FAIL, "tls", f"the certificate names {named}, not site {site!r}")
        )
    return checks


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "unreadable"


def slurm(cfg: AgentConfig, env: Mapping[str, str]) -> list[Check]:
    """Slurm's commands on PATH, the controller answering, and munge working (Slurm sites)."""
    uses = {cfg.executor.kind, cfg.capacity.source} & {"slurm"}
    if not uses:
        return [Check(Verdict.SKIP, "slurm", f"executor {cfg.executor.kind}: Slurm not used")]
    path = env.get("PATH", os.defpath)
    required = (*SLURM_REQUIRED, "sinfo") if cfg.capacity.source == "slurm" else SLURM_REQUIRED
    missing = [c for c in required if shutil.which(c, path=path) is None]
    if missing:
        return [Check(Verdict.FAIL, "slurm", f"not on PATH: {', '.join(missing)}")]
    checks = [Check(Verdict.PASS, "slurm", f"commands found: {', '.join(required)}")]
    if shutil.which("sacct", path=path) is None:
        checks.append(Check(Verdict.WARN, "slurm", "sacct not on PATH: exit codes of ended jobs "
                            "come from squeue only"))  # fmt: skip
    ping = _run(["scontrol", "ping"], env)
    said = " ".join((ping.stdout or ping.stderr).split())
    if ping.returncode == 0 and "UP" in said:
        checks.append(Check(Verdict.PASS, "slurm", f"scontrol ping: {said}"))
    else:
        checks.append(Check(Verdict.FAIL, "slurm", f"scontrol ping: {said or 'no answer'}"))
    return [*checks, munge(env)]


def munge(env: Mapping[str, str]) -> Check:
    """A munge credential encodes and decodes on this host (Slurm's usual authentication)."""
    path = env.get("PATH", os.defpath)
    if shutil.which("munge", path=path) is None or shutil.which("unmunge", path=path) is None:
        return Check(Verdict.WARN, "munge", "munge/unmunge not on PATH: fine only if Slurm "
                     "authenticates without munge (AuthType=auth/slurm)")  # fmt: skip
    encoded = _run(["munge", "-n"], env)
    if encoded.returncode != 0:
        return Check(Verdict.FAIL, "munge", f"munge -n: {_first_line(encoded)}")
    decoded = _run(["unmunge"], env, stdin=encoded.stdout)
    if decoded.returncode != 0:
        return Check(Verdict.FAIL, "munge", f"unmunge: {_first_line(decoded)}")
    return Check(Verdict.PASS, "munge", "a credential encodes and decodes (munged is running)")


def _run(
    args: list[str], env: Mapping[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args,
            input=stdin,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"no answer in {COMMAND_TIMEOUT_S:g} s")
    except OSError as exc:
        return subprocess.CompletedProcess(args, 127, "", _reason(exc))


def _first_line(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or proc.stdout or f"exit status {proc.returncode}").strip()
    return text.splitlines()[0] if text else f"exit status {proc.returncode}"


def capacity(cfg: AgentConfig, env: Mapping[str, str]) -> tuple[list[Check], CapacityReport | None]:
    """What the capacity source finds, and its warnings (GRES types that map to no model)."""
    from site_agent.app import make_capacity_source
    from site_agent.capacity.base import CapacityError

    source = make_capacity_source(cfg, env)
    try:
        snap = source.probe()
    except CapacityError as exc:
        return [Check(Verdict.FAIL, "capacity", f"{cfg.capacity.source} probe: {exc}")], None
    pools = "; ".join(
        f"{p.model}: {p.allocatable}/{p.total} allocatable, {p.in_use} in use" for p in snap.pools
    )
    totals = f"cpu_cores {snap.cpu_cores:g}, memory_gb {snap.memory_gb:g}"
    checks = [Check(Verdict.PASS, "capacity", f"{pools}; {totals}" if pools else totals)]
    warnings = list(getattr(source, "warnings", ()))
    checks += [Check(Verdict.WARN, "gres", line) for line in warnings]
    if cfg.capacity.source == "slurm" and not warnings:
        checks.append(Check(Verdict.PASS, "gres", "every GRES type maps to a model"))
    return checks, snap


def energy(
    cfg: AgentConfig, snap: CapacityReport | None
) -> tuple[list[Check], CapacityReport | None]:
    """The live price and carbon the heartbeat would carry (`energy:`), and the report with them."""
    from site_agent.app import make_energy_feed
    from site_agent.capacity.base import with_energy
    from site_agent.energy import EnergyError

    feed = make_energy_feed(cfg)
    if feed is None:
        return [], snap
    try:
        reading = feed.probe()
    except EnergyError as exc:
        detail = f"{feed.source}: {exc}; reporting none (the broker uses the topology's figures)"
        return [Check(Verdict.WARN, "energy", detail)], snap
    price = _figure(reading.price_cny_per_kwh, "CNY/kWh")
    carbon = _figure(reading.carbon_kg_per_kwh, "kgCO2/kWh")
    shown = f"price {price}, carbon {carbon}"
    checks = [Check(Verdict.PASS, "energy", f"from {feed.source}: {shown}")]
    return checks, (with_energy(snap, reading) if snap is not None else None)


def _figure(value: float, unit: str) -> str:
    """A reported figure; 0 means unknown, so the broker keeps the topology's."""
    return f"{value:g} {unit}" if value else "unknown (topology's)"


def checkpoints(cfg: AgentConfig) -> list[Check]:
    """The checkpoint store: there and writable, or why moves will restart jobs."""
    from site_agent.app import make_checkpoint_transfer

    transfer = make_checkpoint_transfer(cfg)
    warnings = transfer.warnings()
    if warnings:
        return [Check(Verdict.WARN, "checkpoints", line) for line in warnings]
    ck = cfg.checkpoints
    if ck is None:
        return [Check(Verdict.SKIP, "checkpoints", "none configured: moved jobs restart")]
    if ck.store is not None:
        if not os.access(ck.store, os.W_OK | os.X_OK):
            return [Check(Verdict.FAIL, "checkpoints", f"store {ck.store} is not writable")]
        return [Check(Verdict.PASS, "checkpoints", f"store {ck.store} is writable")]
    return [Check(Verdict.PASS, "checkpoints", "export and import commands configured")]


async def broker_outcomes(cfg: AgentConfig, timeout_s: float) -> dict[str, Outcome]:
    """Each broker address's answer to the preflight call, or why it gave none."""
    from site_agent.link import credentials_for
    from site_agent.link import preflight as call

    credentials = credentials_for(cfg.tls)
    server_name = cfg.tls.server_name if cfg.tls else None

    async def one(address: str) -> Outcome:
        try:
            return await call(address, cfg.site, timeout_s, credentials, server_name)
        except ConnectionError as exc:
            return str(exc)
        except ComputeNetError as exc:
            code = exc.status_code or exc.reason
            return f"broker {address} refused the agent ({code}): {exc}"

    results = await asyncio.gather(*(one(address) for address in cfg.brokers))
    return dict(zip(cfg.brokers, results, strict=True))

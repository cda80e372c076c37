"""A job moves between two real agent processes through a checkpoint store and resumes its count.

The broker's side is scripted (FakeBroker on loopback): it stops the attempt on the first agent
with a checkpoint cancel, reads the ref from the final report, and dispatches the next attempt to
a second agent (another site: its own state dir) with that ref to restore.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from computenet.convert import spec_to_proto
from computenet.v1 import site_service_pb2 as sp
from computenet.v1 import types_pb2 as tp
from tests.site_agent.fake_broker import FakeBroker, Session, serve
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for_async

pytestmark = pytest.mark.timeout(180)

COUNTER = """\
import json, os, signal, sys, time
from pathlib import Path

target = int(sys.argv[1])
save_to = Path(os.environ["COMPUTENET_CHECKPOINT_DIR"]) / "state.json"
restore = os.environ.get("COMPUTENET_RESTORE_DIR")
start = Path(restore) / "state.json" if restore else save_to
step = json.loads(start.read_text())["step"] if start.exists() else 0
print("start", step, flush=True)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
while step < target and not stopping:
    time.sleep(0.02)
    step += 1
    save_to.with_suffix(".tmp").write_text(json.dumps({"step": step}))
    os.replace(save_to.with_suffix(".tmp"), save_to)
print("stopped at" if stopping else "done at", step, flush=True)
sys.exit(143 if stopping else 0)
"""


def config(
    tmp_path: Path, name: str, site: str, broker: str, store: Path, executor: str = "local"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"site: {site}\n"
        f"broker: {broker}\n"
        "capacity: {source: static, pools: [{model: a800, count: 8}], cpu_cores: 64, "
        "memory_gb: 512}\n"
        f"executor: {{kind: {executor}, poll_interval_s: 0.05, cancel_grace_s: 1}}\n"
        f"state_dir: {tmp_path / name}\n"
        "heartbeat_interval_s: 0.2\n"
        f"checkpoints: {{store: {store}, grace_s: 20}}\n"
    )
    return path


def start_agent(cfg: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(cfg.with_suffix(".log"), "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "site_agent", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cfg.parent,
        env=env,
    )


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def welcomed(fake: FakeBroker) -> Session:
    session = await fake.next_session()
    hello = (await session.next("hello")).hello
    assert hello.checkpoints, "an agent with a checkpoint store says it moves checkpoints"
    session.welcome()
    await session.next("heartbeat")
    return session


async def report(session: Session, state: int) -> sp.JobEventReport:
    """The next job event report in `state`, acknowledged (earlier ones too)."""
    while True:
        msg = await session.next("job_event", skip=("capacity", "ack"))
        session.ack(msg.job_event.report_id)
        if msg.job_event.state == state:
            return msg.job_event


def steps_saved(state_dir: Path) -> int:
    try:
        text = (state_dir / "checkpoints" / "train" / "state.json").read_text()
    except OSError:
        return 0
    return int(json.loads(text)["step"])


@pytest.mark.parametrize(
    "executor",
    ["local", pytest.param("slurm", marks=[pytest.mark.slurm, pytest.mark.timeout(300)])],
)
def test_a_job_stopped_with_checkpoint_resumes_at_another_site(
    tmp_path: Path, executor: str, request: pytest.FixtureRequest
) -> None:
    # the Slurm nodes run on this machine: the state dirs and the store are shared as is
    env = request.getfixturevalue("slurm_cluster").env if executor == "slurm" else None
    store = tmp_path / "store"
    store.mkdir()  # the shared store every site mounts
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)

    async def main() -> None:
        fake = FakeBroker()
        server, address = await serve(fake)
        first = start_agent(config(tmp_path, "a", "zhangjiakou", address, store, executor), env)
        second: subprocess.Popen[bytes] | None = None
        try:
            session = await welcomed(fake)
            session.dispatch(1, "train", 1, 1, make_spec(sys.executable, str(script), "100000"))
            await report(session, tp.JOB_STATE_RUNNING)
            await wait_for_async(lambda: steps_saved(tmp_path / "a") >= 20, timeout_s=120)

            cancel = sp.CancelAttempt(
                delivery_id=2, job_id="train", attempt=1, reason="moving", checkpoint=True
            )
            session.send(cancel=cancel)
            stopped = await report(session, tp.JOB_STATE_CANCELLED)
            saved = steps_saved(tmp_path / "a")
            exported = store / "train" / "1" / "state.json"
            assert stopped.checkpoint_ref == "train/1"
            assert json.loads(exported.read_text()) == {"step": saved}
            assert stopped.checkpoint_bytes == exported.stat().st_size
            output = (tmp_path / "a" / "jobs" / "train" / "1" / "stdout.log").read_text()
            assert output.splitlines() == ["start 0", f"stopped at {saved}"]
            assert stopped.message == "moving"
            stop_agent(first)
            log = (tmp_path / "a.log").read_text()
            exported_line = f"job_id=train attempt=1 ref=train/1 bytes={stopped.checkpoint_bytes}"
            assert f"checkpoint exported {exported_line}" in log

            second = start_agent(config(tmp_path, "b", "wuhan", address, store, executor), env)
            session = await welcomed(fake)
            resumed = make_spec(sys.executable, str(script), str(saved + 30))
            session.send(
                dispatch=sp.Dispatch(
                    delivery_id=1,
                    job_id="train",
                    attempt=2,
                    fencing_token=2,
                    spec=spec_to_proto(resumed),
                    tenant="t1",
                    restore_ref=stopped.checkpoint_ref,
                )
            )
            done = await report(session, tp.JOB_STATE_SUCCEEDED)
            assert done.checkpoint_ref == ""
            output = (tmp_path / "b" / "jobs" / "train" / "2" / "stdout.log").read_text()
            assert output.splitlines() == [f"start {saved}", f"done at {saved + 30}"]
            restored = tmp_path / "b" / "restore" / "train" / "2" / "state.json"
            assert json.loads(restored.read_text()) == {"step": saved}
        finally:
            stop_agent(first)
            if second is not None:
                stop_agent(second)
            await server.stop(None)

    asyncio.run(main())


def test_a_checkpoint_that_cannot_be_imported_fails_the_launch(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()

    async def main() -> None:
        fake = FakeBroker()
        server, address = await serve(fake)
        agent = start_agent(config(tmp_path, "b", "wuhan", address, store))
        try:
            session = await welcomed(fake)
            session.send(
                dispatch=sp.Dispatch(
                    delivery_id=1,
                    job_id="train",
                    attempt=2,
                    fencing_token=2,
                    spec=spec_to_proto(make_spec("true")),
                    tenant="t1",
                    restore_ref="train/1",
                )
            )
            failed = await report(session, tp.JOB_STATE_FAILED)
            assert failed.launch_failed
            assert "cannot restore checkpoint train/1" in failed.message
            assert not (tmp_path / "b" / "jobs" / "train" / "2" / "stdout.log").exists()
        finally:
            stop_agent(agent)
            await server.stop(None)

    asyncio.run(main())

"""A replay is a measurement: the same command gives the same figures however slow the machine."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from broker.commands.simulate import simulate_command

ARGS = ["simulate", "--workload", "philly,alibaba-genai", "--limit", "300", "--json"]
ARGS += ["--load", "0.8", "--policy", "greedy,optimal", "--seed", "1"]
ARGS += ["--capacity-scale", "0.005"]  # 300 jobs cannot load the default federation


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    app.command("simulate")(simulate_command)
    return app


def _replay() -> dict[str, Any]:
    result = CliRunner().invoke(_app(), ARGS)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    for metrics in document["policies"].values():
        # decision latency is measured on the wall clock: the one figure that may differ
        assert metrics.pop("decision_ms_p50") >= 0.0
    return document


@pytest.mark.usefixtures("traces_present")
def test_a_replay_gives_identical_json_on_a_quiet_and_a_slowed_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet = _replay()
    assert quiet == _replay()
    ticks = itertools.count()
    start = time.perf_counter()
    # every reading of the clock 2 s after the last: far past any wall-clock solve budget
    monkeypatch.setattr(time, "perf_counter", lambda: start + 2.0 * next(ticks))
    slowed = _replay()
    assert slowed == quiet
    assert quiet["policies"]["optimal"]["lp_gap"] is not None  # the joint solve did run

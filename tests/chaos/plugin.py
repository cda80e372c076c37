"""The chaos suite's command-line option: `--chaos-repeat N` runs every scenario N times."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `--chaos-repeat`."""
    parser.addoption(
        "--chaos-repeat",
        type=int,
        default=0,
        help="run every chaos scenario N times (make chaos: 10); unset: once each",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise scenarios taking `chaos_round` by repetition."""
    if "chaos_round" in metafunc.fixturenames:
        rounds = max(1, metafunc.config.getoption("chaos_repeat"))
        metafunc.parametrize("chaos_round", range(1, rounds + 1), ids=lambda r: f"round{r}")

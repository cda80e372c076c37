"""The chaos suite's command-line option: `--chaos-repeat N` runs every scenario N times."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `--chaos-repeat`."""
    parser.addoption(
        "--chaos-repeat",
        type=int,
        default=0,
        help="run every chaos scenario N times (make chaos: 10); unset: the short form",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise scenarios taking `chaos_round` by repetition."""
    if "chaos_round" in metafunc.fixturenames:
        rounds = max(1, metafunc.config.getoption("chaos_repeat"))
        metafunc.parametrize("chaos_round", range(1, rounds + 1), ids=lambda r: f"round{r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The short form (no --chaos-repeat) runs the key scenarios once; the rest are skipped."""
    if config.getoption("chaos_repeat"):
        return
    skip = pytest.mark.skip(reason="full chaos suite only: make chaos (--chaos-repeat N)")
    for item in items:
        if item.get_closest_marker("chaos_full") is not None:
            item.add_marker(skip)

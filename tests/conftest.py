"""Root test configuration: registers the service harness and PKI fixtures for the whole suite."""

from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.harness.postgres",
    "tests.harness.slurm",
    "tests.support.pki",
    "tests.harness.netns",
    "tests.harness.slurm_nodes",
    "tests.chaos.plugin",
]


# Tests that build host-wide rigs (network namespaces and bridges, Slurm clusters) run on one
# xdist worker, one after another: `make test` spreads the rest over two workers.
_HOST_RIG_FIXTURES = frozenset({"bridge", "slurm_cluster", "slurm_nodes_cluster", "federation"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rig = _HOST_RIG_FIXTURES & set(getattr(item, "fixturenames", ()))
        if rig or item.get_closest_marker("slurm") or item.get_closest_marker("chaos"):
            item.add_marker(pytest.mark.xdist_group("host-rigs"))
        elif item.get_closest_marker("browser"):
            # one worker drives Chromium: a module's broker and browser are started once
            item.add_marker(pytest.mark.xdist_group("browser"))


def _utf8(text: str) -> str:
    """`text` with lone surrogates escaped, so the report can cross to the xdist controller."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Hostile-input tests log strings with lone surrogates on purpose (names and messages the
    # agent must survive); the captured output then cannot be serialised between processes.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, _utf8(text)) for title, text in report.sections]

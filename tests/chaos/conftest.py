"""Fixtures of the chaos suite: a federation on a fresh bridge, torn down whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.federation import Federation
from tests.harness.netns import Bridge
from tests.support.pki import Pki


@pytest.fixture
def federation(tmp_path: Path, bridge: Bridge, pki: Pki) -> Iterator[Federation]:
    """A broker (started) on the bridge; scenarios add their agents."""
    fed = Federation(tmp_path, bridge, pki)
    try:
        fed.start_broker()
        yield fed
    finally:
        fed.close()

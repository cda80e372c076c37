"""docs/broker-config.md stays true: its field reference is the schema's, its example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from broker.config import BrokerConfig, load_broker_config
from broker.config.reference import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "broker-config.md"


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    out = []
    for name, info in model.model_fields.items():
        out.append((prefix + name, info.description))
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _fields(kind, f"{prefix}{name}.")
    return out


def test_the_document_carries_the_generated_field_reference() -> None:
    assert reference() in DOC.read_text(), (
        "docs/broker-config.md is out of date: paste the output of "
        "`python -m broker.config.reference` over its field reference"
    )


@pytest.mark.parametrize(("path", "description"), _fields(BrokerConfig))
def test_every_field_is_described_and_documented(path: str, description: str | None) -> None:
    assert description and description.strip(), f"{path} has no description"
    assert f"`{path}`" in DOC.read_text()


def test_the_example_file_loads(tmp_path: Path) -> None:
    match = re.search(r"<!-- example -->\n```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "the example block is missing"
    (tmp_path / "pki").mkdir()  # the files the example names, next to it
    (tmp_path / "tokens.yaml").write_text("tokens: []\n")
    path = tmp_path / "broker.yaml"
    path.write_text(match.group(1))
    config = load_broker_config(path)
    assert config.security.tls_dir == str(tmp_path / "pki")
    assert config.placement.policy().weight("latency") == 1.5
    assert config.rebalance.crontabs == ["0 3 * * sat,sun"]

"""Specs that accept several accelerator models: defaults, field errors, the wire, the topology."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.validation import violations_against
from computenet.convert import spec_from_proto, spec_to_proto
from computenet.errors import SpecError
from computenet.spec import WORKLOADS, load_spec, parse_spec
from topology import WORKLOADS as TOPOLOGY_WORKLOADS
from topology import default_topology

BASE: dict[str, Any] = {"name": "j", "kind": "training", "duration_hours": 5, "command": ["x"]}


def _spec(kind: str = "training", **resources: Any) -> Any:
    return parse_spec(BASE | {"kind": kind, "resources": resources})


def _violations(**resources: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        _spec(**resources)
    return [(v.field, v.description) for v in info.value.violations]


def test_the_spec_knows_the_catalogue_classes() -> None:
    assert WORKLOADS == TOPOLOGY_WORKLOADS


def test_defaults_reference_first_and_workload_by_kind() -> None:
    spec = _spec(accelerators=["a800", "910b", "k100ai"], count=8)
    assert spec.resources.accepted == ("a800", "910b", "k100ai")
    assert spec.resources.reference_model == "a800"
    assert [_spec(kind, count=0).workload for kind in ("training", "batch")] == [
        "llm-training",
        "generic",
    ]
    assert _spec(accelerator="h800").resources.accepted == ("h800",)
    assert _spec(accelerator="h800").resources.reference_model == "h800"
    assert _spec(workload="vision-training").workload == "vision-training"


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ({"accelerator": "a800", "accelerators": ["h800"]}, "accelerators", "not both"),
        ({"accelerators": ["a800"], "reference": "h800"}, "reference", "not one of"),
        ({"reference": "a800"}, "reference", "needs `accelerators`"),
        ({"accelerators": ["a800", "a800"]}, "accelerators", "more than once"),
        ({"workload": "cooking"}, "workload", "unknown workload class 'cooking'"),
        ({"min_memory_gb": -1}, "min_memory_gb", "greater than or equal to 0"),
    ],
)
def test_bad_fields_are_named(resources: dict[str, Any], field: str, words: str) -> None:
    [(where, why)] = _violations(**resources)
    assert where == f"spec.resources.{field}" and words in why


def test_a_spec_file_error_names_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: j\nkind: training\nduration_hours: 5\ncommand: [x]\n"
        "resources:\n  accelerators: [a800, 910b]\n  reference: h800\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}:7: resources.reference: 'h800' is not one of the accepted models" in str(
        info.value
    )


def test_the_wire_round_trip_keeps_every_new_field() -> None:
    spec = _spec(
        accelerators=["a800", "910b"],
        reference="910b",
        workload="vision-training",
        min_memory_gb=64,
        count=4,
    )
    assert spec_from_proto(spec_to_proto(spec)) == spec


def test_in_pool_names_the_chosen_model_alone() -> None:
    spec = _spec(accelerators=["a800", "910b"], workload="generic", min_memory_gb=64, count=4)
    pinned = spec.in_pool("910b").resources
    assert (pinned.accelerator, pinned.accelerators, pinned.reference) == ("910b", (), "")
    assert (pinned.workload, pinned.min_memory_gb) == ("generic", 64)


def test_the_topology_refuses_unknown_models_and_impossible_memory() -> None:
    topology = default_topology()
    bad = _spec(accelerators=["a800", "nope"], count=8)
    [violation] = violations_against(bad, topology)
    assert violation.field == "spec.resources.accelerators[1]"
    assert "unknown accelerator 'nope'" in violation.description
    huge = _spec(accelerators=["910b", "k100ai"], min_memory_gb=80, count=8)
    [violation] = violations_against(huge, topology)
    assert violation.field == "spec.resources.min_memory_gb"
    assert "at most 64" in violation.description
    # a catalogued model without pools may be listed next to pooled ones
    assert violations_against(_spec(accelerators=["h100", "a800"], count=8), topology) == []
    assert violations_against(_spec(accelerators=["h100"], count=8), topology)[0].field == (
        "spec.resources.count"
    )


def test_a_wire_spec_with_a_foreign_reference_is_refused_by_field() -> None:
    message = spec_to_proto(_spec(accelerators=["a800", "910b"], count=4))
    message.resources.reference = "h800"
    with pytest.raises(SpecError) as info:
        spec_from_proto(message)
    assert [v.field for v in info.value.violations] == ["spec.resources.reference"]
    message.resources.reference = ""
    message.resources.workload = "cooking"
    with pytest.raises(SpecError) as info:
        spec_from_proto(message)
    assert [v.field for v in info.value.violations] == ["spec.resources.workload"]

"""The size bounds and text checks of a job spec: each refusal names its field and its bound."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computenet import convert
from computenet.errors import SpecError
from computenet.spec import JobSpec, checked_spec, parse_spec
from computenet.spec_limits import (
    ACCEPTED,
    MAX_ARG_CHARS,
    MAX_COMMAND_ARGS,
    MAX_CONSTRAINT_ENTRIES,
    MAX_LABEL_NAME_CHARS,
    MAX_LABEL_PREFIX_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    MAX_NAME_CHARS,
    MAX_SPEC_BYTES,
)
from computenet.workload import WorkloadJob
from computenet.workload_spec import workload_spec

BATCH: dict[str, Any] = {
    "name": "b",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.5,
    "command": ["true"],
}


def _refused(**changes: Any) -> dict[str, str]:
    """The violations (field -> description) of BATCH with `changes`."""
    with pytest.raises(SpecError) as info:
        parse_spec({**BATCH, **changes})
    return {v.field: v.description for v in info.value.violations}


PREFIX = "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 70
assert len(PREFIX) == MAX_LABEL_PREFIX_CHARS


@pytest.mark.parametrize(
    ("changes", "field", "bound"),
    [
        ({"name": "n" * (MAX_NAME_CHARS + 1)}, "spec.name", str(MAX_NAME_CHARS)),
        ({"command": ["x" * (MAX_ARG_CHARS + 1)]}, "spec.command.0", str(MAX_ARG_CHARS)),
        ({"command": ["x"] * (MAX_COMMAND_ARGS + 1)}, "spec.command", str(MAX_COMMAND_ARGS)),
        ({"labels": {"k": "v" * (MAX_LABEL_VALUE_CHARS + 1)}}, "spec.labels.k", "256"),
        ({"labels": {"k" * (MAX_LABEL_NAME_CHARS + 1): "v"}}, "spec.labels.kkkk", "63"),
        ({"labels": {PREFIX + "x/name": "v"}}, "spec.labels.aaaa", str(MAX_LABEL_PREFIX_CHARS)),
        ({"labels": {f"k{i}": "v" for i in range(MAX_LABELS + 1)}}, "spec.labels", "64"),
        (
            {"constraints": {"allowed_sites": ["s"] * (MAX_CONSTRAINT_ENTRIES + 1)}},
            "spec.constraints.allowed_sites",
            str(MAX_CONSTRAINT_ENTRIES),
        ),
        (
            {"constraints": {"excluded_sites": ["s" * 65]}},
            "spec.constraints.excluded_sites.0",
            "64",
        ),
        ({"command": ["x" * 4000] * 20}, "spec", str(MAX_SPEC_BYTES)),
    ],
    ids=[
        "name",
        "argument",
        "arguments",
        "label-value",
        "label-name",
        "label-prefix",
        "labels",
        "constraint-entries",
        "constraint-entry",
        "whole-spec",
    ],
)
def test_every_bound_is_a_violation_naming_field_and_bound(
    changes: dict[str, Any], field: str, bound: str
) -> None:
    violations = _refused(**changes)
    matching = [f for f in violations if f.startswith(field)]
    assert matching, violations
    assert bound in violations[matching[0]]


def test_everything_at_its_bound_is_accepted() -> None:
    spec = parse_spec(
        {
            **BATCH,
            "name": "n" * MAX_NAME_CHARS,
            "command": ["x" * MAX_ARG_CHARS, *(["y"] * (MAX_COMMAND_ARGS - 1))],
            "labels": {
                PREFIX + "/" + "k" * MAX_LABEL_NAME_CHARS: "v" * MAX_LABEL_VALUE_CHARS,
                "team": "nlp",
                "中文": "标签",
                "app.kubernetes.io/name": "trainer",
            },
            "constraints": {"allowed_sites": ["s" * 64] * 10},
        }
    )
    assert len(spec.canonical_json().encode()) <= MAX_SPEC_BYTES


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"command": ["python", "a\x00b"]}, "spec.command.1"),
        ({"name": "x\x00"}, "spec.name"),
        ({"labels": {"k": "v\x00"}}, "spec.labels.k"),
        ({"resources": {"accelerator": "a\x00"}}, "spec.resources.accelerator"),
        ({"constraints": {"allowed_provinces": ["\x00"]}}, "spec.constraints.allowed_provinces.0"),
    ],
)
def test_nul_is_refused_in_every_string(changes: dict[str, Any], field: str) -> None:
    assert "NUL" in _refused(**changes)[field]


@pytest.mark.parametrize("field", ["name", "command"])
def test_a_lone_surrogate_is_refused(field: str) -> None:
    value: Any = "a\ud800b" if field == "name" else ["a\udfffb"]
    violations = _refused(**{field: value})
    assert any("lone surrogate" in d for d in violations.values()), violations


@pytest.mark.parametrize("name", ["\x1b[2J\x07evil", "line\nbreak", "abc\u202edef", "x\x9b"])
def test_control_and_bidi_characters_are_refused_in_names(name: str) -> None:
    assert "control" in _refused(name=name)["spec.name"]


def test_tabs_and_newlines_are_fine_in_command_arguments() -> None:
    spec = parse_spec({**BATCH, "command": ["sh", "-c", "echo a\n\techo b"]})
    assert spec.command[2] == "echo a\n\techo b"


@pytest.mark.parametrize("key", ["", "-k", "k-", "a b", "[red]x", "k=v", "UPPER/name", "a/b/c"])
def test_label_keys_outside_the_alphabet_are_refused(key: str) -> None:
    violations = _refused(labels={key: "v"})
    assert any(f.startswith("spec.labels") for f in violations), violations


def test_a_huge_label_key_is_cut_in_the_violation_path() -> None:
    violations = _refused(labels={"k" * 2_500_000: "v"})
    (field,) = violations
    assert len(field) < 200 and "2500000 characters" in field


def test_an_accepted_spec_is_read_back_without_the_bounds() -> None:
    old = {**BATCH, "labels": {"k": "v" * 300}, "command": ["a\x00b"]}
    spec = JobSpec.model_validate(old, context=ACCEPTED)
    assert JobSpec.model_validate_json(spec.canonical_json(), context=ACCEPTED) == spec
    with pytest.raises(SpecError):
        checked_spec(spec)


def test_a_job_from_the_broker_decodes_leniently_but_a_submission_does_not() -> None:
    spec = JobSpec.model_validate({**BATCH, "labels": {"k": "v" * 300}}, context=ACCEPTED)
    msg = convert.spec_to_proto(spec)
    assert convert.spec_from_proto(msg, accepted=True) == spec
    with pytest.raises(SpecError) as info:
        convert.spec_from_proto(msg)
    assert [v.field for v in info.value.violations] == ["spec.labels.k"]


@given(st.text(st.characters(codec="utf-8") | st.sampled_from("\x00\ud800\udc00"), max_size=8))
def test_an_argument_is_accepted_exactly_when_a_site_could_run_it(arg: str) -> None:
    runnable = arg != "" and "\x00" not in arg and not any(0xD800 <= ord(c) <= 0xDFFF for c in arg)
    try:
        spec = parse_spec({**BATCH, "command": ["run", arg]})
    except SpecError as exc:
        assert not runnable, exc
        assert {v.field for v in exc.violations} == {"spec.command.1"}
        return
    assert runnable
    assert convert.spec_from_proto(convert.spec_to_proto(spec)) == spec


def test_a_trace_job_id_with_control_characters_still_makes_a_valid_spec() -> None:
    job = WorkloadJob("\x1b[2Jtrace\x00id", 0.0, "batch", "a800", 1, 60.0, "", 0.0, "", None, "t")
    spec = workload_spec(job)
    assert spec.name == "\\x1b[2Jtrace\\x00id"
    assert checked_spec(spec) == spec

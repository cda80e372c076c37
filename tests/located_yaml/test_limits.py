"""YAML reading bounded in nesting, alias expansion, file size and kind, with located errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from located_yaml import LocatedError, YamlSyntaxError, read_source, read_yaml
from located_yaml.limits import YamlLimits

SMALL = YamlLimits(max_depth=5, max_values=50)


def _laughs(levels: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@given(depth=st.integers(1, 12))
def test_nesting_is_refused_exactly_past_the_bound(depth: int) -> None:
    text = "[" * depth + "]" * depth
    if depth <= SMALL.max_depth:
        read_yaml(text, SMALL)
    else:
        with pytest.raises(YamlSyntaxError, match="nested deeper than 5"):
            read_yaml(text, SMALL)


@given(levels=st.integers(1, 4), width=st.integers(1, 5))
def test_aliases_count_as_the_values_they_expand_to(levels: int, width: int) -> None:
    text = _laughs(levels, width)
    # each level k holds width**(k+1) leaves plus the lists: all expanded, plus one key each
    expanded = sum(sum(width**j for j in range(1, k + 2)) + 1 for k in range(levels)) + 1
    if expanded <= SMALL.max_values:
        assert read_yaml(text, SMALL).data["l0"] == ["x"] * width
    else:
        with pytest.raises(YamlSyntaxError, match="once aliases are expanded"):
            read_yaml(text, SMALL)


def test_a_billion_laughs_is_refused_at_its_line() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        read_yaml(_laughs(9, 10))
    assert info.value.line is not None and info.value.line > 1


@pytest.mark.parametrize(
    "text", ["n: " + "9" * 5000, "d: 2001-13-45", "{[1]: 2}", "a: !!python/name:os.system"]
)
def test_values_the_safe_constructor_cannot_build_are_syntax_errors(text: str) -> None:
    with pytest.raises(YamlSyntaxError):
        read_yaml(text)


def test_a_source_must_be_a_small_regular_utf8_file(tmp_path: Path) -> None:
    fifo, folder, big, latin = (tmp_path / n for n in ("fifo", "dir", "big", "latin"))
    os.mkfifo(fifo)
    folder.mkdir()
    big.write_text("x" * 101)
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    expected = {
        fifo: "not a regular file",
        folder: "is a directory",
        big: "larger than 100 bytes",
        latin: "not UTF-8 text (byte 0xe9)",
        tmp_path / "missing": "no such file",
    }
    for path, message in expected.items():
        with pytest.raises(LocatedError) as info:
            read_source(path, max_bytes=100)
        (issue,) = info.value.issues
        assert issue.file == str(path) and message in issue.message
    with pytest.raises(LocatedError) as info:
        read_source(latin)
    assert info.value.issues[0].line == 2

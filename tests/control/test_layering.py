"""Only the lifecycle core builds job transitions, and only its driver hands them to the store."""

from __future__ import annotations

import ast
from pathlib import Path

BROKER = Path(__file__).resolve().parents[2] / "broker"
CORE = BROKER / "control"
STORE = BROKER / "store"
DRIVER = BROKER / "jobflow" / "driver.py"
WRITER = BROKER / "writer.py"  # the store's async facade: it forwards transitions, never builds one


def _modules() -> list[Path]:
    return [
        p
        for p in BROKER.rglob("*.py")
        if CORE not in p.parents and STORE not in p.parents and p != WRITER
    ]


def _names_transition(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "Transition" for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.Name) and node.id == "Transition":
            lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "Transition":
            lines.append(node.lineno)
    return lines


def _writer_applies(tree: ast.AST) -> list[int]:
    """Calls of `<something writer>.apply(...)` or `store.apply(...)`."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "apply":
            continue
        receiver = ast.unparse(node.func.value)
        if "writer" in receiver or receiver.endswith("store"):
            lines.append(node.lineno)
    return lines


def test_no_module_outside_the_core_builds_a_transition() -> None:
    offenders = {
        str(p.relative_to(BROKER)): lines
        for p in _modules()
        if (lines := _names_transition(ast.parse(p.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


def test_only_the_driver_writes_transitions() -> None:
    offenders = {
        str(p.relative_to(BROKER)): lines
        for p in _modules()
        if p != DRIVER and (lines := _writer_applies(ast.parse(p.read_text(encoding="utf-8"))))
    }
    assert offenders == {}
    assert _writer_applies(ast.parse(DRIVER.read_text(encoding="utf-8"))), "the check still sees"

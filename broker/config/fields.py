"""Field types shared by the broker config sections: strictness, addresses and paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, ValidationInfo

from computenet.address import AddressError, parse_address

STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
"""No coercion ("5" is not a number), no unknown keys, no infinities (they do not survive JSON)."""

BASE_DIR = "base_dir"


@dataclass(frozen=True, slots=True)
class Kind:
    """What a constrained text field holds, as the documentation names it."""

    text: str


"""Validation context key: the folder relative paths in the file are resolved against."""


def _address(value: str) -> str:
    try:
        parse_address(value)
    except AddressError as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


def _absolute(value: str, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    base = (info.context or {}).get(BASE_DIR)
    return (Path(base) if base is not None else Path.cwd()) / path


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = _absolute(value, info)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path)


def _existing_dir(value: str, info: ValidationInfo) -> str:
    path = _absolute(value, info)
    if not path.is_dir():
        raise ValueError(f"no such folder: {path}")
    return str(path)


AddressText = Annotated[str, AfterValidator(_address), Kind("HOST:PORT")]
"""HOST:PORT or [IPv6]:PORT; port 0 picks a free port."""

ExistingFile = Annotated[str, AfterValidator(_existing_file), Kind("path to a file")]
"""A file that exists; relative to the config file's folder, kept as an absolute path."""

ExistingDir = Annotated[str, AfterValidator(_existing_dir), Kind("path to a folder")]
"""A folder that exists; relative to the config file's folder, kept as an absolute path."""

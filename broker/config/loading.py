"""Loading the broker config: the file (optional) with command-line values laid over it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from broker.config.fields import BASE_DIR
from broker.config.schema import BrokerConfig
from located_yaml import (
    LocatedError,
    Override,
    YamlDocument,
    load_mapping,
    read_source,
    validate_mapping,
)


class BrokerConfigError(LocatedError):
    """The broker config cannot be used; `issues` name file, line and field of every problem
    (or the command-line flag a bad value came from)."""


def load_broker_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[Override] = ()
) -> BrokerConfig:
    """The effective config: defaults, then the file at `path`, then `overrides`.

    Relative paths in the file are taken relative to the file's folder; overrides should carry
    absolute paths. Raises BrokerConfigError listing every problem found.
    """
    try:
        if path is None:
            doc, file, base = YamlDocument(data={}, lines={}), None, Path.cwd()
        else:
            file = os.fspath(path)
            doc = load_mapping(read_source(file), file=file, allow_empty=True)
            base = Path(file).resolve().parent
        return validate_mapping(
            BrokerConfig, doc, file=file, overrides=overrides, context={BASE_DIR: base}
        )
    except LocatedError as exc:
        raise BrokerConfigError(exc.issues) from None

"""The tenants table of a running broker, re-read from its config file when the file changes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from broker.config.loading import BrokerConfigError, load_broker_config
from broker.config.tenants import tenants_table
from broker.tenancy import TenantsTable
from located_yaml import LocatedIssue

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


def load_tenants_file(path: Path) -> TenantsTable:
    """The tenants table of a file whose top level has `tenants:` (and maybe `tenancy:`): a
    tenants file, or a whole broker config file.

    The file is validated whole, as `computenet-broker config check` does; BrokerConfigError
    names file, line and field of every problem, and a file without `tenants:` is one.
    """
    config = load_broker_config(path)
    if "tenants" not in config.model_fields_set:
        raise BrokerConfigError(
            [
                LocatedIssue(
                    str(path),
                    None,
                    "tenants",
                    "missing: a tenants file names its tenants under `tenants:` at the top "
                    "level, as the broker config file does",
                )
            ]
        )
    return tenants_table(config.tenants, config.tenancy)


class TenantsFile:
    """The `tenants` and `tenancy` sections of the broker config file, as last loaded.

    The file is checked at most every `check_every_s` (its modification time and size); a
    changed file is validated whole, as `computenet-broker config check` does, and a file that
    does not validate keeps the tenants last loaded (logged at ERROR with every problem).
    Without a file (`path` None) the table given stays.
    """

    def __init__(
        self,
        path: Path | None,
        initial: TenantsTable,
        *,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._table = initial
        self._check_every_s = check_every_s
        self._clock = clock
        self._stamp = self._file_stamp()
        self._checked_s = clock()

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> TenantsTable:
        """The tenants table, after re-reading the file if it changed since it was last read."""
        now = self._clock()
        if self.path is None or now - self._checked_s < self._check_every_s:
            return self._table
        self._checked_s = now
        stamp = self._file_stamp()
        if stamp == self._stamp or stamp is None:
            return self._table
        try:
            config = load_broker_config(self.path)
        except BrokerConfigError as exc:
            problems = "; ".join(str(issue) for issue in exc.issues)
            log.error("tenants not reloaded path=%s error=%s", self.path, problems)
            self._stamp = stamp  # report a broken file once, not at every check
            return self._table
        except OSError as exc:
            log.error("tenants not reloaded path=%s error=%s", self.path, exc)
            return self._table
        self._stamp = stamp
        self._table = tenants_table(config.tenants, config.tenancy)
        log.info("tenants reloaded path=%s tenants=%d", self.path, len(self._table.tenants))
        return self._table

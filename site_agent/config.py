"""The agent's configuration: schema, YAML loading with file:line errors, environment overrides."""

from __future__ import annotations

import shlex
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from computenet.address import AddressError, parse_address
from computenet.errors import ComputeNetError
from site_agent.energy_schedule import ScheduleError, load_schedule

ENV_PREFIX = "COMPUTENET_AGENT_"
_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("agent_config_file", default=None)


class ConfigError(ComputeNetError, ValueError):
    """The agent configuration cannot be read or is invalid; the message names file, line, field."""

    reason = "INVALID_AGENT_CONFIG"


class PoolConfig(BaseModel):
    """One accelerator pool of a static site, with its node shape if known.

    With a node shape the broker gives each job whole nodes of the pool; give one of `nodes`
    and `cards_per_node` and the other follows from `count`.
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64, description="Accelerator model id.")
    count: int = Field(ge=0, description="Accelerators of this model.")
    nodes: int | None = Field(
        None, ge=1, description="Nodes the cards sit on (nodes x cards_per_node = count)."
    )
    cards_per_node: int | None = Field(
        None, ge=1, description="Cards on each node (nodes x cards_per_node = count)."
    )

    @model_validator(mode="after")
    def _whole_nodes(self) -> PoolConfig:
        nodes, per_node, count = self.nodes, self.cards_per_node, self.count
        if nodes is not None and per_node is None:
            self.cards_per_node = _whole_part(count, nodes, "nodes")
        elif per_node is not None and nodes is None:
            self.nodes = _whole_part(count, per_node, "cards_per_node")
        elif nodes is not None and per_node is not None and nodes * per_node != count:
            raise ValueError(
                f"nodes x cards_per_node must equal count: {nodes} x {per_node} != {count}"
            )
        return self


def _whole_part(count: int, given: int, name: str) -> int:
    """count / given, which must divide it (the other half of a pool's node shape)."""
    if count % given:
        raise ValueError(f"count {count} is not a whole number of {name} ({given})")
    return count // given


class CapacityConfig(BaseModel):
    """Where the advertised capacity comes from."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["static", "host", "slurm"] = Field(description="static, host or slurm.")
    pools: list[PoolConfig] = Field(default_factory=list, description="Pools (static only).")
    cpu_cores: float = Field(0.0, ge=0, description="CPU cores offered (static only).")
    memory_gb: float = Field(0.0, ge=0, description="Memory offered in GB (static only).")
    partition: str | None = Field(None, description="Slurm partition to count (slurm only).")
    gres_models: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Slurm GRES GPU type -> accelerator model id of the topology, e.g. "
            "{nvidia_a800: a800} (slurm only). A type that is already a model id needs no "
            "entry; any other type counts no cards and is warned about at start and in check."
        ),
    )


class ExecutorConfig(BaseModel):
    """How the agent runs attempts."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "slurm"] = Field(description="local or slurm.")
    cancel_grace_s: float = Field(10.0, ge=0, description="SIGTERM→SIGKILL grace (local).")
    poll_interval_s: float = Field(1.0, gt=0, description="How often attempts are polled.")
    partition: str | None = Field(None, description="sbatch --partition (slurm).")
    account: str | None = Field(None, description="sbatch --account (slurm).")
    sbatch_args: list[str] = Field(default_factory=list, description="Extra sbatch arguments.")
    time_headroom: float = Field(1.25, ge=1.0, description="--time = duration × headroom.")
    stop_jobs_on_exit: bool = Field(False, description="Stop running attempts on shutdown.")


class CheckpointsConfig(BaseModel):
    """Where checkpoints of stopped attempts go, so an attempt at another site can resume them."""

    model_config = ConfigDict(extra="forbid")
    store: Path | None = Field(
        None,
        description=(
            "A directory every site of the federation can reach (a shared file system, or a "
            "mount of an object store): a checkpoint is copied to STORE/<job_id>/<attempt>/."
        ),
    )
    export_command: str | None = Field(
        None,
        description=(
            "Instead of copying to `store`: a command run to export a checkpoint, with {src} "
            "(the job's checkpoint folder), {dest} (STORE/<ref>, or <ref> without a store) and "
            "{ref} (<job_id>/<attempt>) replaced; exit 0 means the checkpoint is complete there."
        ),
    )
    import_command: str | None = Field(
        None,
        description=(
            "Instead of copying from `store`: a command run to import checkpoint {ref} from "
            "{src} (STORE/<ref>, or <ref>) into the empty folder {dest}."
        ),
    )
    timeout_s: float = Field(
        600.0, gt=0, description="How long an export or import command may run."
    )
    grace_s: float | None = Field(
        None,
        ge=0,
        description=(
            "How long a job stopped with checkpoint has after SIGTERM to write its checkpoint "
            "and exit before SIGKILL (local and Slurm); default: executor.cancel_grace_s."
        ),
    )

    @model_validator(mode="after")
    def _somewhere(self) -> CheckpointsConfig:
        if self.store is None and not (self.export_command and self.import_command):
            raise ValueError("set store, or both export_command and import_command")
        return self


class EnergyConfig(BaseModel):
    """Where the site's live power price and carbon intensity come from (docs/agent.md)."""

    model_config = ConfigDict(extra="forbid")
    schedule: Path | None = Field(
        None,
        description=(
            "A YAML or CSV file of CNY/kWh (and optionally kgCO2/kWh) by hour of day in China "
            "Standard Time; re-read when it changes."
        ),
    )
    command: list[str] | None = Field(
        None,
        description=(
            "A command (a list, or a string split like a shell would, never run by one) that "
            'prints {"price_cny_per_kwh": P, "carbon_kg_per_kwh": C}; either key may be left out.'
        ),
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="How long the command may run.")
    refresh_s: float = Field(60.0, gt=0, description="How often the command is run.")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> EnergyConfig:
        if (self.schedule is None) == (self.command is None):
            raise ValueError("set exactly one of schedule and command")
        if self.command is not None and not self.command:
            raise ValueError("command: must name a program")
        return self


class TlsConfig(BaseModel):
    """The site's identity towards the broker: mTLS with a certificate naming the site."""

    model_config = ConfigDict(extra="forbid")
    ca: Path = Field(description="CA certificate the broker's certificate is checked against.")
    cert: Path = Field(
        description="This site's certificate (`computenet-broker certs issue-site`)."
    )
    key: Path = Field(description="This site's private key.")
    server_name: str | None = Field(
        None, description="Name to check in the broker certificate if not the dialled host."
    )


class AgentConfig(BaseSettings):
    """Everything a site agent is configured with; read once at the entry point."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter="__"
    )
    site: str = Field(min_length=1, max_length=64, description="Site id in the broker topology.")
    broker: str = Field(
        description=(
            "Broker address HOST:PORT, or several (a comma-separated string or a YAML list): "
            "the replicas of one broker cluster, tried in turn."
        )
    )
    capacity: CapacityConfig
    executor: ExecutorConfig
    state_dir: Path = Field(description="Directory for the journal and job folders.")
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="Heartbeat interval until the broker's welcome sets one."
    )
    lease_s: float = Field(
        40.0,
        gt=0,
        description=(
            "Lease length until the broker's welcome sets one: attempts stop this long after "
            "the send time of the last heartbeat the broker answered."
        ),
    )
    tls: TlsConfig | None = Field(
        None,
        description="mTLS to the broker's agent port; None only for an insecure loopback broker.",
    )
    checkpoints: CheckpointsConfig | None = Field(
        None,
        description=(
            "The site's checkpoint store; None keeps checkpoints on this site only (an attempt "
            "stopped with checkpoint reports none, and a dispatch that restores one fails)."
        ),
    )
    energy: EnergyConfig | None = Field(
        None,
        description=(
            "Live power price and carbon to report; None reports none (the broker then uses "
            "the topology's schedule and carbon factor)."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")

    @field_validator("broker", mode="before")
    @classmethod
    def _valid_addresses(cls, value: Any) -> Any:
        # kept as one comma-joined string, so a single address reads exactly as it was written
        return ",".join(broker_addresses(value))

    @property
    def checkpoint_grace_s(self) -> float:
        """SIGTERM to SIGKILL for a stop with checkpoint."""
        grace = self.checkpoints.grace_s if self.checkpoints is not None else None
        return self.executor.cancel_grace_s if grace is None else grace

    @property
    def brokers(self) -> tuple[str, ...]:
        """The broker addresses in the order the agent tries them (at least one, no repeats)."""
        return tuple(self.broker.split(","))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Command-line overrides beat the environment, which beats the file."""
        return (init_settings, env_settings, _FileSource(settings_cls))


def broker_addresses(value: Any) -> tuple[str, ...]:
    """The validated addresses of `broker:` (a string, comma-separated or not, or a list), in
    order without repeats; raise ValueError naming the bad entry."""
    if isinstance(value, str):
        entries: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        entries = list(value)
    else:
        raise ValueError("expected HOST:PORT, several separated by commas, or a list of them")
    if not entries or entries == [""]:
        raise ValueError("at least one broker address HOST:PORT is required")
    addresses: list[str] = []
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number}: " if len(entries) > 1 else ""
        if not isinstance(entry, str):
            raise ValueError(f"{where}expected a HOST:PORT string, got {type(entry).__name__}")
        address = entry.strip()
        if not address:
            raise ValueError(f"{where}empty address")
        try:
            parse_address(address)
        except AddressError as exc:
            raise ValueError(f"{where}{exc}") from None
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_DATA.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


def load_config(path: str | Path, **overrides: Any) -> AgentConfig:
    """Read a YAML config, apply environment and keyword overrides, validate; raise ConfigError."""
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
        lines = key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{name}{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of keys to values")
    token = _FILE_DATA.set(data)
    try:
        config = AgentConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, name, lines)) from None
    finally:
        _FILE_DATA.reset(token)
    base = p.parent.resolve()
    if not config.state_dir.is_absolute():
        config = config.model_copy(update={"state_dir": base / config.state_dir})
    if config.checkpoints is not None and config.checkpoints.store is not None:
        store = config.checkpoints.store
        if not store.is_absolute():
            checkpoints = config.checkpoints.model_copy(update={"store": base / store})
            config = config.model_copy(update={"checkpoints": checkpoints})
    if config.energy is not None and config.energy.schedule is not None:
        config = _with_schedule(config, base, name, lines)
    if config.tls is not None:
        tls = config.tls
        paths = {name: getattr(tls, name) for name in ("ca", "cert", "key")}
        resolved = {k: v if v.is_absolute() else base / v for k, v in paths.items()}
        config = config.model_copy(update={"tls": tls.model_copy(update=resolved)})
    return config


def _with_schedule(
    config: AgentConfig, base: Path, name: str, lines: dict[tuple[Any, ...], int]
) -> AgentConfig:
    """The config with its energy schedule path resolved, the schedule file checked now."""
    assert config.energy is not None and config.energy.schedule is not None
    path = config.energy.schedule
    if not path.is_absolute():
        path = base / path
        energy = config.energy.model_copy(update={"schedule": path})
        config = config.model_copy(update={"energy": energy})
    try:
        load_schedule(path)
    except ScheduleError as exc:
        line = lines.get(("energy", "schedule"), 1)
        raise ConfigError(f"{name}:{line}: energy.schedule: {exc}") from None
    return config


def key_lines(node: yaml.Node | None, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """1-based line of every key (and sequence item) in a composed YAML document, by path."""
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines[path] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = item.start_mark.line + 1
            lines.update(key_lines(item, path))
    return lines


def describe_errors(exc: ValidationError, name: str, lines: dict[tuple[Any, ...], int]) -> str:
    """One `file:line: field: problem` fragment per error, joined on one line."""
    parts = []
    for item in exc.errors():
        loc = tuple(item["loc"])
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)
        field = ".".join(str(p) for p in loc) or "config"
        parts.append(f"{name}:{line}: {field}: {_problem(item)}")
    return "; ".join(parts)


def _problem(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        expected = str(item.get("ctx", {}).get("expected", ""))
        options = expected.replace("'", "").replace(" or ", ", ")
        return f"must be one of {options}"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")

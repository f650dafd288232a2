"""Configuration from a YAML file and the environment, checked whole at start.

Each section is a dataclass; the loader reports every problem it finds, one line
each naming the file and the field, before anything starts. An environment
variable ``STACKMETER_<SECTION>_<FIELD>`` (for example
``STACKMETER_KAFKA_BOOTSTRAP_SERVERS``) overrides the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackmeter.errors import ConfigError
from stackmeter.resources import RESOURCE_TYPE_IDS

ENV_PREFIX = "STACKMETER_"


@dataclass
class KafkaConfig:
    """Where the broker is and how topics are laid out."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "stackmeter"
    partitions: int = 6
    replication_factor: int = 1

    def problems(self) -> list[str]:
        found = []
        if not self.bootstrap_servers.strip():
            found.append("bootstrap_servers: must name at least one host:port")
        if self.partitions < 1:
            found.append(f"partitions: must be at least 1, got {self.partitions}")
        if self.replication_factor < 1:
            found.append(
                f"replication_factor: must be at least 1, got {self.replication_factor}"
            )
        return found


@dataclass
class PlatformConfig:
    """One OpenStack cloud and region, as a ``clouds.yaml`` entry names it."""

    cloud: str = ""
    platform_id: str = ""
    region: str | None = None

    def problems(self) -> list[str]:
        found = []
        if not self.cloud:
            found.append("cloud: must name a clouds.yaml entry")
        if not self.platform_id:
            found.append("platform_id: must be set, e.g. 'openstack.eu-west'")
        return found


@dataclass
class SamplerConfig:
    """How often and how the sampler lists each resource type."""

    interval_s: float = 300.0
    jitter_s: float = 10.0
    page_size: int = 1000
    api_retries: int = 3
    # Delay between API retries; None backs off exponentially from 0.5 s.
    api_retry_delay_s: float | None = None
    api_timeout_s: float = 60.0
    types: list[str] = field(default_factory=lambda: list(RESOURCE_TYPE_IDS))
    platforms: list[PlatformConfig] = field(default_factory=list)
    clouds_yaml: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.interval_s <= 0:
            found.append(f"interval_s: must be above 0, got {self.interval_s}")
        if self.jitter_s < 0 or self.jitter_s >= self.interval_s:
            found.append(f"jitter_s: must be in [0, interval_s), got {self.jitter_s}")
        if self.page_size < 1:
            found.append(f"page_size: must be at least 1, got {self.page_size}")
        if self.api_retries < 0:
            found.append(f"api_retries: must be 0 or more, got {self.api_retries}")
        if self.api_retry_delay_s is not None and self.api_retry_delay_s <= 0:
            found.append(
                f"api_retry_delay_s: must be above 0, got {self.api_retry_delay_s}"
            )
        if self.api_timeout_s <= 0:
            found.append(f"api_timeout_s: must be above 0, got {self.api_timeout_s}")
        found.extend(
            f"types: unknown resource type {name!r}; known: "
            f"{', '.join(RESOURCE_TYPE_IDS)}"
            for name in self.types
            if name not in RESOURCE_TYPE_IDS
        )
        for index, platform in enumerate(self.platforms):
            found.extend(f"platforms[{index}].{p}" for p in platform.problems())
        if self.clouds_yaml and not Path(self.clouds_yaml).is_file():
            found.append(f"clouds_yaml: no such file {self.clouds_yaml!r}")
        return found


@dataclass
class WorkerConfig:
    """Hour windows, the existence check and where window state is kept."""

    grace_s: float = 300.0
    gap_fill: bool = True
    trait_policy: str = "last"
    store: str = "rocksdb://"
    data_dir: str = "var/worker"
    app_id: str = "stackmeter-worker"
    # Longest sampling gap (hours) filled with estimated usage.
    gap_fill_max_h: int = 24
    # How long (hours behind the first open hour) a late snapshot can still
    # correct a published hour.
    correction_horizon_h: int = 6
    # Run the rating stage in the same worker process.
    rating: bool = True
    # How soon the consumer group notices a worker that died.
    session_timeout_s: float = 30.0

    def problems(self) -> list[str]:
        found = []
        if self.grace_s < 0:
            found.append(f"grace_s: must be 0 or more, got {self.grace_s}")
        if self.gap_fill_max_h < 1:
            found.append(
                f"gap_fill_max_h: must be at least 1, got {self.gap_fill_max_h}"
            )
        if self.session_timeout_s < 1:
            found.append(
                f"session_timeout_s: must be at least 1, got {self.session_timeout_s}"
            )
        if self.correction_horizon_h < 0:
            found.append(
                "correction_horizon_h: must be 0 or more, "
                f"got {self.correction_horizon_h}"
            )
        if self.trait_policy not in ("last", "first", "max"):
            found.append(
                f"trait_policy: must be last, first or max, got {self.trait_policy!r}"
            )
        if self.store not in ("rocksdb://", "memory://"):
            found.append(f"store: must be rocksdb:// or memory://, got {self.store!r}")
        return found


@dataclass
class RatingConfig:
    """The product catalog that prices usage."""

    catalog: str = "catalog/example.yaml"
    reload_s: float = 10.0

    def problems(self) -> list[str]:
        found = []
        if not Path(self.catalog).is_file():
            found.append(f"catalog: no such file {self.catalog!r}")
        if self.reload_s <= 0:
            found.append(f"reload_s: must be above 0, got {self.reload_s}")
        return found


@dataclass
class SinkConfig:
    """Where usage is stored and how inserts are batched."""

    clickhouse: str = "var/clickhouse"
    batch_rows: int = 5000
    batch_s: float = 1.0
    group_id: str = "stackmeter-sink"
    # ClickHouse database that holds every stackmeter table; created if absent.
    database: str = "stackmeter"
    # Completed sampling runs one hour should have per platform and type; 0
    # derives it from the sampler: 3600 / sampler.interval_s.
    expected_runs_per_hour: int = 0
    # Back-off between insert attempts while ClickHouse is down: doubles from
    # retry_initial_s up to retry_max_s, for as long as the outage lasts.
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0

    def problems(self) -> list[str]:
        found = []
        if self.batch_rows < 1:
            found.append(f"batch_rows: must be at least 1, got {self.batch_rows}")
        if self.batch_s <= 0:
            found.append(f"batch_s: must be above 0, got {self.batch_s}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.database):
            found.append(
                "database: must be a plain identifier (letters, digits, _), "
                f"got {self.database!r}"
            )
        if self.expected_runs_per_hour < 0:
            found.append(
                "expected_runs_per_hour: must be 0 (derive from the sampler) or "
                f"more, got {self.expected_runs_per_hour}"
            )
        if self.retry_initial_s <= 0:
            found.append(
                f"retry_initial_s: must be above 0, got {self.retry_initial_s}"
            )
        if self.retry_max_s < self.retry_initial_s:
            found.append(
                f"retry_max_s: must be at least retry_initial_s, got {self.retry_max_s}"
            )
        return found


@dataclass
class MetricsConfig:
    """The Prometheus endpoint; port 0 turns it off."""

    port: int = 0
    host: str = "127.0.0.1"

    def problems(self) -> list[str]:
        if not 0 <= self.port < 65536:
            return [f"port: must be in 0..65535, got {self.port}"]
        return []


@dataclass
class Config:
    """The whole configuration of one stackmeter process."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    rating: RatingConfig = field(default_factory=RatingConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = "<defaults>"

    def problems(self, sections: tuple[str, ...] | None = None) -> list[str]:
        """Every problem of the named sections (all when None)."""
        found: list[str] = []
        for f in dataclasses.fields(self):
            if f.name == "source" or (sections and f.name not in sections):
                continue
            section = getattr(self, f.name)
            found.extend(f"{f.name}.{p}" for p in section.problems())
        return found

    def validate(self, *sections: str) -> None:
        """Raise one ConfigError listing every problem, each with the file."""
        found = self.problems(sections or None)
        if found:
            raise ConfigError(
                "\n".join(f"{self.source}: {problem}" for problem in found)
            )


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the file (if any), apply environment overrides, return the config.

    Types and unknown keys are checked here; ranges are checked by
    :meth:`Config.validate`, which each command calls for its sections.
    """
    environ = os.environ if environ is None else environ
    source = str(path) if path else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        raw = loaded or {}
    _apply_environment(raw, environ)
    problems: list[str] = []
    config: Config = _build(Config, raw, "", problems)
    if problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    config.source = source
    return config


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX) :].lower()
        section, _, name = rest.partition("_")
        if section in sections and name:
            target = raw.setdefault(section, {})
            if isinstance(target, dict):
                target[name] = yaml.safe_load(value) if value else value


def _build(cls: type[Any], raw: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{where.rstrip('.')}: expected a mapping, got {raw!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    for key in raw:
        if key not in known:
            problems.append(
                f"{where}{key}: unknown field; known: {', '.join(sorted(known))}"
            )
    values = {}
    for name in known:
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], f"{where}{name}", problems)
    return cls(**values)


# What a YAML scalar may be for each field type; bool is excluded from the
# numbers below because YAML's ``yes`` must not become 1.
_ACCEPTED: dict[Any, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str, int, float),
}


def _coerce(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if value is None:
            return None
        return _coerce(members[0], value, where, problems)
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, f"{where}.", problems)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return []
        return [
            _coerce(item, v, f"{where}[{i}]", problems) for i, v in enumerate(value)
        ]
    accepted = _ACCEPTED.get(hint, ())
    is_flag_for_number = isinstance(value, bool) and hint is not bool
    if isinstance(value, accepted) and not is_flag_for_number:
        return hint(value)
    problems.append(
        f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}"
    )
    return None

"""Configuration: one `.ini` file, a section per concern, environment variables on top.

Every key `[section] key` can be overridden by `CALLBRIDGE_<SECTION>_<KEY>` (upper case). The
file is `--config PATH`, else `$CALLBRIDGE_CONFIG`, else `/etc/callbridge/callbridge.ini` when it
exists; without any file the defaults below apply. Everything is validated at start-up: an
unknown section or key, or a bad value, is a `ConfigError` that names the key. This module is the
only place that reads `os.environ`. `callbridge.example.ini` documents every key.
"""

import configparser
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_PATH = Path("/etc/callbridge/callbridge.ini")
ENV_PREFIX = "CALLBRIDGE_"


class ConfigError(Exception):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusSettings(_Section):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = Field("callbridge", pattern=r"^[A-Za-z0-9_.-]+$")
    prefetch: int = Field(1000, ge=1, le=65535)
    confirm_window: int = Field(1000, ge=1)

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class PbxSettings(_Section):
    driver: Literal["simulator", "3cx"] = "simulator"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Prague)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SimulatorSettings(_Section):
    directory: Path | None = None
    scenario: Path | None = None
    recordings_dir: Path = Path("/var/lib/callbridge/pbx-recordings")
    record: bool = True
    speed: float = Field(1.0, gt=0, description="how much faster than real time the simulator runs")
    calls_per_minute: float = Field(6.0, gt=0)
    max_concurrent: int = Field(20, ge=1)
    seed: int | None = None


class MonitorSettings(_Section):
    id: str = Field("", description="the monitor's id on its events; empty: the host name")

    @property
    def source(self) -> str:
        return self.id or socket.gethostname()


class Settings(_Section):
    bus: BusSettings = BusSettings()
    log: LogSettings = LogSettings()
    pbx: PbxSettings = PbxSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    monitor: MonitorSettings = MonitorSettings()


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, str]] = {}
    path = path or _default_path(environ)
    if path is not None:
        raw = _read_ini(path)
    sections = Settings.model_fields
    for section, values in raw.items():
        if section not in sections:
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(sections)})")
        known = _section_model(section).model_fields
        for key in values:
            if key not in known:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}] (known: {', '.join(known)})")
    for section in sections:
        for key in _section_model(section).model_fields:
            variable = f"{ENV_PREFIX}{section}_{key}".upper()
            if variable in environ:
                raw.setdefault(section, {})[key] = environ[variable]
    return _validate(raw, path)


def _default_path(environ: Mapping[str, str]) -> Path | None:
    if environ.get(f"{ENV_PREFIX}CONFIG"):
        return Path(environ[f"{ENV_PREFIX}CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream)
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    except configparser.Error as error:
        raise ConfigError(f"{path}: not a valid .ini file: {error}") from None
    return {name: dict(parser[name]) for name in parser.sections()}


def _section_model(section: str) -> type[_Section]:
    annotation = Settings.model_fields[section].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, _Section)):
        raise TypeError(f"Settings.{section} is not a section model")
    return annotation


def _validate(raw: dict[str, dict[str, str]], path: Path | None) -> Settings:
    cleaned = {s: {k: v for k, v in values.items() if v != ""} for s, values in raw.items()}  # empty: default
    try:
        return Settings.model_validate(cleaned)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = item["loc"]
            key = f"[{where[0]}] {where[1]}" if len(where) >= 2 else str(where[0])
            variable = f"{ENV_PREFIX}{where[0]}_{where[1]}".upper() if len(where) >= 2 else ""
            problems.append(f"{key} (or ${variable}): {item['msg']}")
        origin = f"{path}: " if path else ""
        raise ConfigError(origin + "invalid configuration: " + "; ".join(problems)) from None

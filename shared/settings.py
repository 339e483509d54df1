"""Configuration: one `.ini` file, a section per concern, environment variables on top.

Every key `[section] key` can be overridden by `CALLBRIDGE_<SECTION>_<KEY>` (upper case). The
file is `--config PATH`, else `$CALLBRIDGE_CONFIG`, else `/etc/callbridge/callbridge.ini` when it
exists; without any file the defaults below apply. Everything is validated at start-up: an
unknown section or key, or a bad value, is a `ConfigError` that names the key. This module is the
only place that reads `os.environ`. `callbridge.example.ini` documents every key.
"""

import configparser
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from yarl import URL

DEFAULT_CONFIG_PATH = Path("/etc/callbridge/callbridge.ini")
ENV_PREFIX = "CALLBRIDGE_"


class ConfigError(Exception):
    pass


MIN_KEY_LENGTH = 16  # an API key's or a link signing secret's: guessing one must be hopeless
DAY = 86400.0
MAX_RETRY_DELAY = 7 * DAY  # longer than RabbitMQ's per-message TTL tiers were meant for


def check_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError saying so when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Prague)") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_HOST = re.compile(r"^[A-Za-z0-9.:_-]*$")  # a name, an IPv4 or an IPv6 address, without brackets


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """`value` if it is a URL of one of `schemes` with a host and a valid port; else ValueError
    that names the problem without repeating the URL (it may hold a password)."""
    try:
        url = URL(value)
        port = url.port  # parsing the port can fail on its own
    except (ValueError, TypeError):
        raise ValueError(
            "not a valid URL (characters such as / # ? @ in a user name or password must be "
            "percent-encoded, e.g. / as %2F)"
        ) from None
    if url.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not url.host:
        raise ValueError("has no host name")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return value


def _split_words(value: Any) -> Any:
    """A list in an .ini value or an environment variable: words separated by spaces or commas."""
    return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value


def _host(value: str) -> str:
    if not _HOST.match(value):
        raise ValueError(f"{value!r} is not a host name or an IP address (an IPv6 address without brackets)")
    return value


Host = Annotated[str, AfterValidator(_host)]
Words = Annotated[tuple[str, ...], BeforeValidator(_split_words)]
SecretWords = Annotated[tuple[SecretStr, ...], BeforeValidator(_split_words)]


class _Served(_Section):
    """A section whose service answers HTTP: plain, or HTTPS with a certificate and its key."""

    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> "_Served":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: both, or neither (plain HTTP behind a proxy)")
        return self


class BusSettings(_Section):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = Field("callbridge", pattern=r"^[A-Za-z0-9_.-]+$")
    prefetch: int = Field(1000, ge=1, le=65535)
    confirm_window: int = Field(1000, ge=1, le=1_000_000)

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, value: str) -> str:
        return check_url(value, ("amqp", "amqps"))


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
    url: str = Field("", description="the 3CX web address, e.g. https://pbx.example.com:5001")
    client_id: str = Field("", description="the API client's Client ID (its route point DN)")
    client_secret: SecretStr | None = Field(None, description="the API client's key, shown once by 3CX")
    verify_tls: bool = True
    directory_refresh: float = Field(300.0, gt=0, le=DAY, description="seconds between directory reloads")
    snapshot_interval: float = Field(45.0, gt=0, le=DAY, description="seconds between full call snapshots")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        check_zone(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("http", "https")) if value else value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SimulatorSettings(_Section):
    directory: Path | None = None
    scenario: Path | None = None
    recordings_dir: Path = Path("/var/lib/callbridge/pbx-recordings")
    record: bool = True
    speed: float = Field(1.0, gt=0, le=1e6, description="how much faster than real time the simulator runs")
    calls_per_minute: float = Field(6.0, ge=0, le=600)
    max_concurrent: int = Field(20, ge=1, le=100_000)
    seed: int | None = None


class MonitorSettings(_Section):
    id: str = Field("", description="the monitor's id on its events; empty: the host name")
    http_host: Host = "127.0.0.1"
    http_port: int = Field(8081, ge=0, le=65535)

    @property
    def source(self) -> str:
        return self.id or socket.gethostname()


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """`5s`, `5m`, `2h`, `1.5` (seconds) → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text.strip()!r} is not a duration such as 5s, 30m, 2h")
    return float(match[1]) * _UNITS[match[2] or "s"]


class WebhooksSettings(_Section):
    retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = Field(0.2, ge=0, lt=1)
    database: Path = Path("/var/lib/callbridge/webhooks.db")
    attempt_log_days: float = Field(30, gt=0, le=3650)
    http_host: Host = "127.0.0.1"
    http_port: int = Field(8082, ge=0, le=65535)

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(parse_duration(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one delay, e.g. 5s, 5m, 30m")
        if any(not 0 < delay <= MAX_RETRY_DELAY for delay in value):
            raise ValueError(f"each delay must be more than 0 and at most {MAX_RETRY_DELAY / 86400:g} days")
        return value


class RecordingsSettings(_Served):
    pbx_dir: Path = Path("/var/lib/callbridge/pbx-recordings")
    archive_dir: Path = Path("/var/lib/callbridge/recordings")
    database: Path = Path("/var/lib/callbridge/recordings.db")
    bitrate: int = Field(32, ge=8, le=320, description="MP3 kbit/s")
    quality: int = Field(7, ge=0, le=9, description="LAME quality, 0 best and slowest")
    keep_wav: bool = True
    workers: int = Field(2, ge=1, le=64)
    scan_interval: float = Field(5.0, gt=0, le=3600)
    settle: float = Field(
        10.0, ge=0, le=DAY, description="seconds a WAV must be unchanged to count as complete"
    )
    quiet: float = Field(5.0, ge=0, le=DAY)
    max_wait: float = Field(120.0, ge=0, le=7 * DAY)
    retention_days: float = Field(90.0, gt=0, le=36500)
    cleanup_hour: int = Field(3, ge=0, le=23)
    public_url: str = "https://localhost:8443"

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str) -> str:
        return check_url(value, ("http", "https"))

    token_secret: SecretStr | None = None
    token_ttl: float = Field(7 * DAY, gt=0, le=3650 * DAY)

    @field_validator("token_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters (any long random string)")
        return value

    http_host: Host = "0.0.0.0"
    http_port: int = Field(8443, ge=0, le=65535)


class ApiSettings(_Served):
    """The REST API: where it listens, who may use it, how long it waits for the monitor."""

    http_host: Host = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    keys: SecretWords = Field((), description="keys that may read and send commands")
    read_only_keys: SecretWords = Field((), description="keys that may only read")
    command_timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for the monitor")
    stream_buffer: int = Field(
        1000, ge=10, le=1_000_000, description="events a slow /events client may lag behind"
    )

    @field_validator("keys", "read_only_keys")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(key.get_secret_value()) < MIN_KEY_LENGTH for key in value):
            raise ValueError(
                f"each key must be at least {MIN_KEY_LENGTH} characters (callbridge demo prints a fresh one)"
            )
        return value


class EndpointSettings(_Section):
    """One `[webhook:NAME]` section: where and how to deliver."""

    url: str
    format: Literal["classic", "json"] = "classic"
    events: Words = ("#",)
    secret: SecretWords = ()
    timeout: float = Field(15.0, gt=0, le=300)
    enabled: bool = True
    recording_call_info: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, ("http", "https"))

    @field_validator("secret")
    @classmethod
    def _secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in value:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("each secret must be a Standard Webhooks secret: whsec_ and base64")
        return value

    @model_validator(mode="after")
    def _json_is_signed(self) -> "EndpointSettings":
        if self.format == "json" and not self.secret:
            raise ValueError("format = json needs a secret (whsec_...) to sign with")
        if self.format == "classic" and self.secret:
            raise ValueError("format = classic is never signed: remove the secret or use format = json")
        return self


class Settings(_Section):
    bus: BusSettings = BusSettings()
    log: LogSettings = LogSettings()
    pbx: PbxSettings = PbxSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    monitor: MonitorSettings = MonitorSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    api: ApiSettings = ApiSettings()
    endpoints: dict[str, EndpointSettings] = Field(
        default_factory=dict, description="the [webhook:NAME] sections"
    )


ENDPOINT_PREFIX = "webhook:"
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    path = path or _default_path(environ)
    raw = _read_ini(path) if path is not None else {}
    where = f"{path}: " if path else ""
    fixed = [name for name in Settings.model_fields if name != "endpoints"]
    sections: dict[str, dict[str, str]] = {}
    endpoints: dict[str, dict[str, str]] = {}
    for section, values in raw.items():
        if section.startswith(ENDPOINT_PREFIX):
            name = section[len(ENDPOINT_PREFIX) :]
            if not _ENDPOINT_NAME.match(name):
                raise ConfigError(f"{where}[{section}]: an endpoint name is letters, digits, - and _")
            _check_keys(where, section, values, EndpointSettings)
            endpoints[name] = values
        elif section in fixed:
            _check_keys(where, section, values, _section_model(section))
            sections[section] = values
        else:
            known = ", ".join([*fixed, "webhook:NAME"])
            raise ConfigError(f"{where}unknown section [{section}] (known: {known})")
    for section in fixed:
        _check_environment(section, environ)
        _overlay(sections.setdefault(section, {}), _section_model(section), f"{section}_", environ)
    for name, values in endpoints.items():
        _overlay(values, EndpointSettings, f"webhook_{name.replace('-', '_')}_", environ)
    return _validate({**sections, "endpoints": endpoints}, path)


# keys earlier versions knew, and what became of them
_REMOVED = {
    (
        "webhooks",
        "shards",
    ): "removed: call chains are spread over a fixed number of queues now; delete the line",
}


def _check_keys(where: str, section: str, values: Mapping[str, str], model: type[_Section]) -> None:
    for key in values:
        if (section, key) in _REMOVED:
            raise ConfigError(f"{where}[{section}] {key}: {_REMOVED[section, key]}")
        if key not in model.model_fields:
            known = ", ".join(model.model_fields)
            raise ConfigError(f"{where}unknown key {key!r} in [{section}] (known: {known})")


def _check_environment(section: str, environ: Mapping[str, str]) -> None:
    """A misspelt CALLBRIDGE_<SECTION>_<KEY> is an error, as a misspelt key in the file is."""
    prefix, known = f"{ENV_PREFIX}{section}_".upper(), _section_model(section).model_fields
    for variable in environ:
        if variable.startswith(prefix) and variable[len(prefix) :].lower() not in known:
            raise ConfigError(
                f"unknown environment variable {variable} (the keys of [{section}]: {', '.join(known)})"
            )


def _overlay(values: dict[str, str], model: type[_Section], prefix: str, environ: Mapping[str, str]) -> None:
    for key in model.model_fields:
        variable = f"{ENV_PREFIX}{prefix}{key}".upper()
        if variable in environ:
            values[key] = environ[variable]


def _default_path(environ: Mapping[str, str]) -> Path | None:
    if environ.get(f"{ENV_PREFIX}CONFIG"):
        return Path(environ[f"{ENV_PREFIX}CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no default section")
    try:
        with path.open(encoding="utf-8-sig") as stream:  # a BOM, as Windows editors write it, is fine
            parser.read_file(stream)
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8)") from None
    except configparser.Error as error:
        raise ConfigError(f"{path}: not a valid .ini file: {_ini_problem(error)}") from None
    return {name: dict(parser[name]) for name in parser.sections()}


def _ini_problem(error: configparser.Error) -> str:
    """configparser's complaint on one line."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"line {error.lineno}: a [section] must come first"
    if isinstance(error, configparser.ParsingError):
        lines = ", ".join(str(number) for number, _ in error.errors[:5])
        return f"line(s) {lines}: neither a [section], a key = value, nor a comment"
    if isinstance(error, configparser.DuplicateSectionError | configparser.DuplicateOptionError):
        return str(error).replace("\n", " ")
    return str(error).splitlines()[0]


def _section_model(section: str) -> type[_Section]:
    annotation = Settings.model_fields[section].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, _Section)):
        raise TypeError(f"Settings.{section} is not a section model")
    return annotation


def _validate(raw: dict[str, Any], path: Path | None) -> Settings:
    def clean(values: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in values.items() if v != ""}  # an empty value: the default

    cleaned: dict[str, Any] = {s: clean(v) for s, v in raw.items() if s != "endpoints"}
    cleaned["endpoints"] = {name: clean(v) for name, v in raw["endpoints"].items()}
    try:
        return Settings.model_validate(cleaned)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = [str(part) for part in item["loc"]]
            if where[0] == "endpoints" and len(where) >= 2:
                section, rest = f"webhook:{where[1]}", where[2:]
                prefix = f"webhook_{where[1].replace('-', '_')}"
            else:
                section, rest, prefix = where[0], where[1:], where[0]
            if rest:
                variable = f"{ENV_PREFIX}{prefix}_{rest[0]}".upper()
                problems.append(f"[{section}] {rest[0]} (or ${variable}): {item['msg']}")
            else:
                problems.append(f"[{section}]: {item['msg']}")
        origin = f"{path}: " if path else ""
        raise ConfigError(origin + "invalid configuration: " + "; ".join(problems)) from None

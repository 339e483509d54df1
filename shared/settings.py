"""Configuration: a section per concern, each a model that checks its keys (the values' kinds:
`values.py`). `config_file.py` reads them from the .ini file and the environment."""

import re
import socket
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .values import (
    DAY,
    MAX_RETRY_DELAY,
    MIN_KEY_LENGTH,
    PRIVATE_NETWORKS,
    DatabaseAddress,
    Host,
    Networks,
    Patterns,
    QueueType,
    SecretWords,
    Words,
    check_url,
    check_zone,
    parse_duration,
    url_list,
)


class ConfigError(Exception):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description="the broker; for a cluster its nodes' URLs, comma-separated: the first that "
        "answers is used, and on a lost connection the next, in order",
    )
    exchange: str = Field("callbridge", pattern=r"^[A-Za-z0-9_.-]+$")
    queue_type: QueueType = Field(
        "classic",
        description="classic, or quorum (replicated across a cluster's nodes): every durable "
        "queue is declared so; changing it needs `callbridge bus convert-queues`",
    )
    prefetch: int = Field(1000, ge=1, le=65535)
    confirm_window: int = Field(1000, ge=1, le=1_000_000)

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, value: str) -> str:
        urls = url_list(value)
        for number, url in enumerate(urls, 1):
            try:
                check_url(url, ("amqp", "amqps"))
            except ValueError as error:
                raise ValueError(f"URL {number}: {error}" if len(urls) > 1 else str(error)) from None
        return ",".join(urls)

    @property
    def urls(self) -> tuple[str, ...]:
        return url_list(self.amqp_url)


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
    calls_per_minute: float = Field(6.0, ge=0, le=60_000)
    max_concurrent: int = Field(20, ge=1, le=100_000)
    minutes: float | None = Field(
        None, gt=0, description="no new calls after this many minutes (the calls then end as planned)"
    )
    seed: int | None = None


class MonitorSettings(_Section):
    id: str = Field("", description="the monitor's id on its events; empty: the host name")
    http_host: Host = "127.0.0.1"
    http_port: int = Field(8081, ge=0, le=65535)
    outbox: Path = Field(
        Path("/var/lib/callbridge/monitor-outbox.db"),
        description="the events not yet confirmed by RabbitMQ (SQLite): on a disk that survives restarts",
    )
    states_every: float = Field(
        0.1, ge=0, le=5, description="seconds the calls' changed states are gathered into one message"
    )

    @property
    def source(self) -> str:
        return self.id or socket.gethostname()

    @property
    def backlog(self) -> Path:
        """Where the 3CX driver keeps the PBX's updates it cannot hold in memory: beside the outbox."""
        return self.outbox.with_name(f"{self.outbox.stem}-backlog.db")


class WebhooksSettings(_Section):
    retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = Field(0.2, ge=0, lt=1)
    database: DatabaseAddress = Field(
        "/var/lib/callbridge/webhooks.db",
        description="the delivery store: a file (SQLite), or postgresql://… (shared across hosts)",
    )
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
    database: DatabaseAddress = Field(
        "/var/lib/callbridge/recordings.db",
        description="the recordings ledger: a file (SQLite), or postgresql://… (shared across hosts)",
    )
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

    http_host: Host = "127.0.0.1"
    http_port: int = Field(8443, ge=0, le=65535)
    metrics_from: Networks = Field(
        PRIVATE_NETWORKS,
        validate_default=True,
        description="networks whose clients may read /metrics (the downloads may face the internet)",
    )


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
    dial_allow: Patterns = Field(
        (re.compile(r"\+?[0-9]{7,15}"),),
        description="makecall: outside numbers that may be dialled (whole-number regular expressions)",
    )
    dial_deny: Patterns = Field(
        (re.compile(r"(\+|00)?1?900[0-9]*"), re.compile(r"0900[0-9]*")),
        description="makecall: numbers that may not be dialled, even where dial_allow matches",
    )
    makecall_per_minute: float = Field(10, gt=0, le=6000, description="makecall: calls per key and minute")
    webhooks_admin_url: str = Field(
        "http://127.0.0.1:8082",
        description="the webhooks service's admin routes, which the dashboard reaches through the api",
    )
    recent_chains: int = Field(500, ge=0, le=100_000, description="the dashboard's window of recent chains")

    @field_validator("webhooks_admin_url")
    @classmethod
    def _admin_url(cls, value: str) -> str:
        return check_url(value, ("http", "https")).rstrip("/")

    @field_validator("keys", "read_only_keys")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(key.get_secret_value()) < MIN_KEY_LENGTH for key in value):
            raise ValueError(
                f"each key must be at least {MIN_KEY_LENGTH} characters (callbridge demo prints a fresh one)"
            )
        return value


Format = Literal["classic", "json", "template", "zammad", "bitrix24", "hubspot", "pipedrive", "slack"]
PRESETS = get_args(Format)[3:]  # templates that ship with callbridge: services/webhooks/presets/
TOKENED = ("hubspot", "pipedrive")


class EndpointSettings(_Section):
    """One `[webhook:NAME]` section: where and how to deliver."""

    url: str
    format: Format = "classic"
    events: Words = ("#",)
    secret: SecretWords = ()
    templates: Path | None = None  # format = template: a folder of <event type>.http files
    token: SecretStr | None = None  # the CRM's API token (hubspot, pipedrive)
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
    def _what_the_format_needs(self) -> "EndpointSettings":
        if self.format == "json" and not self.secret:
            raise ValueError("format = json needs a secret (whsec_...) to sign with")
        if self.format != "json" and self.secret:
            raise ValueError(
                f"format = {self.format} is never signed: remove the secret or use format = json"
            )
        if (self.format == "template") != (self.templates is not None):
            raise ValueError("templates = FOLDER goes with format = template, and only with it")
        if self.format in TOKENED and self.token is None:
            raise ValueError(f"format = {self.format} needs the CRM's API token: token = …")
        return self

    @property
    def templated(self) -> bool:
        """Rendered from templates: a folder of the user's, or a preset's."""
        return self.format == "template" or self.format in PRESETS


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

"""Configuration: one `.ini` file, a section per concern, environment variables on top.

Every key `[section] key` can be overridden by `CALLBRIDGE_<SECTION>_<KEY>` (upper case). The
file is `--config PATH`, else `$CALLBRIDGE_CONFIG`, else `/etc/callbridge/callbridge.ini` when it
exists; without any file the defaults (`settings.py`) apply. Everything is validated at start-up:
an unknown section or key, a misspelt variable or a bad value is a `ConfigError` that names the
key. This module is the only place that reads `os.environ`. `callbridge.example.ini` documents
every key.
"""

import configparser
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .settings import ConfigError, EndpointSettings, Settings, _Section

DEFAULT_CONFIG_PATH = Path("/etc/callbridge/callbridge.ini")
ENV_PREFIX = "CALLBRIDGE_"
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

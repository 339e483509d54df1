"""docker-compose.yml read as a compose client reads it, with no client installed: variables
interpolated (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR:+other}`,
`$$`), override files merged (mappings key by key, mounts by their target, `command`,
`entrypoint` and `healthcheck.test` replaced), and the result validated against the Compose
Specification's JSON schema as the check-jsonschema package ships it, then checked for what the
schema cannot see (services and volumes that are named but not defined)."""

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|(\w+))")
REPLACED = {"command", "entrypoint", "test"}
BY_TARGET = {"volumes", "devices"}


class ComposeError(ValueError):
    pass


def load(files: list[Path], environment: Mapping[str, str]) -> dict[str, Any]:
    """The merged, interpolated project of `files` (the first one's folder is the project's)."""
    merged: dict[str, Any] = {}
    for path in files:
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict):
            raise ComposeError(f"{path}: not a mapping")
        merged = _merge(merged, _interpolate(document, environment, str(path)))
    return merged


def problems(project: dict[str, Any]) -> list[str]:
    """Why `project` is not a valid compose project: schema violations, then dangling names."""
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema)
    found = [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(project)
    ]
    services = project.get("services") or {}
    volumes = set(project.get("volumes") or {})
    for name, service in services.items():
        for needed in service.get("depends_on") or ():
            if needed not in services:
                found.append(f"services.{name}.depends_on: no service {needed!r}")
        for mount in service.get("volumes") or ():
            source = str(mount).split(":", 1)[0] if ":" in str(mount) else ""
            if source and not source.startswith((".", "/", "~", "$")) and source not in volumes:
                found.append(f"services.{name}.volumes: volume {source!r} is not declared")
    return found


def _interpolate(value: Any, environment: Mapping[str, str], where: str) -> Any:
    if isinstance(value, dict):
        return {key: _interpolate(item, environment, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environment, where) for item in value]
    if isinstance(value, str):
        return VARIABLE.sub(lambda match: _substitute(match, environment, where), value)
    return value


def _substitute(match: re.Match[str], environment: Mapping[str, str], where: str) -> str:
    escaped, name, operator, argument, bare = match.groups()
    if escaped:
        return "$"
    name = name or bare
    value = environment.get(name)
    argument = _interpolate(argument or "", environment, where)
    if operator in (":-", "-"):
        empty = value is None or (operator == ":-" and value == "")
        return argument if empty else str(value)
    if operator in (":?", "?"):
        if value is None or (operator == ":?" and value == ""):
            raise ComposeError(f"{where}: {name} is required: {argument}")
        return value
    if operator in (":+", "+"):
        present = value is not None and (operator == "+" or value != "")
        return argument if present else ""
    return value or ""


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED:
        if key in BY_TARGET:
            targets = {_target(item): item for item in base}
            targets.update({_target(item): item for item in override})
            return list(targets.values())
        return base + [item for item in override if item not in base]
    return override


def _target(mount: Any) -> str:
    if isinstance(mount, dict):
        return str(mount.get("target"))
    parts = str(mount).split(":")
    return parts[1] if len(parts) > 1 else parts[0]

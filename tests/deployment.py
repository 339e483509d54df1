"""How callbridge is deployed, read from the files users deploy with: the Debian units
(`deploy/debian/*.service`), the image (`Dockerfile`) and `docker-compose.yml`.

`stage(root)` runs the install script into a throwaway root; `Deployment.argv(service)` is then
the unit's ExecStart under that root, which the stack tests run: the very command systemd runs,
and (the deploy tests check) the same command the compose file gives the image's entrypoint."""

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "debian"
SERVICES = ("monitor", "api", "webhooks", "recordings")


def unit_settings(service: str) -> dict[str, list[str]]:
    """The [Service] section of `callbridge-<service>.service`: key → every value given."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / f"callbridge-{service}.service").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def unit_command(service: str) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart as argv, and the environment it sets."""
    settings = unit_settings(service)
    environment = dict(
        pair.split("=", 1) for value in settings.get("Environment", []) for pair in shlex.split(value)
    )
    return shlex.split(settings["ExecStart"][0]), environment


def compose_file() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def image() -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's ENTRYPOINT and ENV (the keys and values of its ENV instructions)."""
    entrypoint: list[str] = []
    environment: dict[str, str] = {}
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
        elif line.startswith("ENV "):
            environment.update(pair.split("=", 1) for pair in shlex.split(line.removeprefix("ENV ")))
    return entrypoint, environment


def stage(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the install script into `root` (as if it were /)."""
    return subprocess.run(
        ["bash", str(UNITS / "install.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@dataclass(frozen=True)
class Deployment:
    root: Path  # where the install script staged /opt/callbridge, /etc/callbridge, …

    def argv(self, service: str) -> list[str]:
        """The unit's ExecStart, its program taken from the staged root."""
        command, _ = unit_command(service)
        return [str(self.root / command[0].lstrip("/")), *command[1:]]

    def health(self, service: str) -> list[str]:
        """The compose file's health check of `service`, with the staged program."""
        test = compose_file()["services"][service]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "callbridge"], test
        return [self.argv(service)[0], *test[2:]]

    def environment(self, service: str, config: Path) -> dict[str, str]:
        """This process's environment with the unit's, its config file replaced by `config`."""
        _, environment = unit_command(service)
        assert set(environment) == {"CALLBRIDGE_CONFIG"}, environment
        return {**os.environ, "CALLBRIDGE_CONFIG": str(config)}

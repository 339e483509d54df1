"""The whole stack as users run it: `docker compose up --scale webhooks=3 --scale recordings=2`
with docker-compose.yml (and tests/compose/compose.test.yml: simulated traffic, a receiver).

Brought up by pytest-docker wherever a Docker engine answers; elsewhere (this project's CI
machine has none) these tests are deselected and the run ends with a notice saying so."""

import os
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from shared.http_server import free_port
from tests.deployment import ROOT, SERVICES

pytestmark = pytest.mark.docker
HERE = ROOT / "tests" / "compose"
REPLICAS = {"monitor": 1, "api": 1, "webhooks": 3, "recordings": 2}
KEY = "compose-test-key-0123456789"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker compose" if shutil.which("docker") else "docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> Iterator[list[str]]:
    ports = {
        "API_PORT": str(free_port()),
        "RECORDINGS_PORTS": f"{free_port()}-{free_port()}",
        "RABBITMQ_PASSWORD": "compose-test-password",
    }
    saved = {name: os.environ.get(name) for name in ports}
    os.environ.update(ports)  # compose reads them when it brings the stack up
    yield [str(ROOT / "docker-compose.yml"), str(HERE / "compose.test.yml")]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    scale = " ".join(f"--scale {service}={REPLICAS[service]}" for service in ("webhooks", "recordings"))
    return [f"up --build --wait {scale}"]


def compose(command: str, project: str, files: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    options = [item for file in files for item in ("-f", file)]
    return subprocess.run(
        [*command.split(), *options, "-p", project, *args], capture_output=True, text=True, check=False
    )


def test_the_scaled_stack_delivers_webhooks_and_every_replica_is_ready(
    docker_services: object,
    docker_compose_command: str,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return compose(docker_compose_command, docker_compose_project_name, docker_compose_file, *args)

    for service, count in REPLICAS.items():
        running = run("ps", "-q", service).stdout.split()
        assert len(running) == count, (service, running)
        for index in range(1, count + 1):  # the image's health command, in each replica
            checked = run("exec", "-T", "--index", str(index), service, "callbridge", "health", service)
            assert checked.returncode == 0, (service, index, checked.stdout, checked.stderr)

    def webhooks_received() -> int:
        log = run("logs", "--no-color", "receiver").stdout
        return sum("GET /?" in line and "event=" in line for line in log.splitlines())

    docker_services.wait_until_responsive(  # type: ignore[attr-defined]
        check=lambda: webhooks_received() >= 3, timeout=180, pause=2
    )
    api = docker_services.port_for("api", 8080)  # type: ignore[attr-defined]
    answer = httpx.get(f"http://127.0.0.1:{api}/all.ext.get", headers={"X-API-Key": KEY}, timeout=10)
    assert answer.status_code == 200 and answer.json()["count"] > 0
    assert set(SERVICES) <= set(run("config", "--services").stdout.split())

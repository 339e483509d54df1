"""The files users deploy with: the image and the compose file run the units' commands, the
compose file validates and scales, the install script stages a working tree, and the units verify."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deployment import (
    ROOT,
    SERVICES,
    Deployment,
    compose_file,
    image,
    stage,
    unit_command,
    unit_settings,
)

SCALED = ("webhooks", "recordings")


def test_the_image_the_compose_file_and_the_units_run_the_same_commands() -> None:
    entrypoint, image_environment = image()
    services = compose_file()["services"]
    for service in SERVICES:
        argv, environment = unit_command(service)
        assert Path(argv[0]).name == entrypoint[0] == "callbridge", service
        assert argv[1:] == services[service]["command"] == [service]
        # the same configuration file, found the same way
        assert environment["CALLBRIDGE_CONFIG"] == image_environment["CALLBRIDGE_CONFIG"]
        mounts = [str(volume).split(":") for volume in services[service]["volumes"]]
        assert [source for source, target, *_ in mounts if target == environment["CALLBRIDGE_CONFIG"]] == [
            "./callbridge.ini"
        ]


def test_the_compose_file_runs_rabbitmq_healthy_and_durable_and_scales_without_changes() -> None:
    services = compose_file()["services"]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert any(str(volume).endswith(":/var/lib/rabbitmq") for volume in rabbitmq["volumes"])
    for service in SERVICES:
        spec = services[service]
        assert spec["depends_on"]["rabbitmq"]["condition"] == "service_healthy", service
        assert spec["healthcheck"]["test"] == ["CMD", "callbridge", "health", service]
        assert any(str(volume).startswith("callbridge-data:") for volume in spec["volumes"]), service
        assert "container_name" not in spec, service
    for service in SCALED:  # --scale N: no fixed name, and no single host port two replicas would fight for
        for port in services[service].get("ports", []):
            host = str(port).rsplit(":", 1)[0].split(":")[-1]
            assert "-" in host, (
                f"{service} publishes one host port ({port}): a second replica could not start"
            )


def _compose_command() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_the_compose_file_validates(tmp_path: Path) -> None:
    command = _compose_command()
    assert command, "no compose client: apt-get install docker-compose (.ci/run does)"
    environment = {**os.environ, "RABBITMQ_PASSWORD": "a-password"}
    checked = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "amqp://callbridge:a-password@rabbitmq:5672/" in checked.stdout  # .env values interpolated
    listed = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(listed.stdout.split()) == sorted(["rabbitmq", *SERVICES])
    with_tests = [
        *command,
        "-f",
        str(ROOT / "docker-compose.yml"),
        "-f",
        str(ROOT / "tests/compose/compose.test.yml"),
    ]
    merged = subprocess.run([*with_tests, "config"], capture_output=True, text=True, check=False)
    assert merged.returncode == 0, merged.stderr  # what tests/compose brings up, where an engine runs
    assert "receiver" in merged.stdout and "callbridge.test.ini" in merged.stdout
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml").read_text().replace('    command: ["api"]', '    comand: ["api"]')
    )
    refused = subprocess.run([*command, "-f", str(broken), "config", "-q"], capture_output=True, text=True)
    assert refused.returncode != 0 and "comand" in refused.stderr  # the check can fail


def test_the_install_script_stages_a_working_tree(deployment: Deployment) -> None:
    root = deployment.root
    version = subprocess.run([*deployment.argv("monitor")[:1], "--help"], capture_output=True, text=True)
    assert version.returncode == 0 and "monitor" in version.stdout
    config = root / "etc/callbridge/callbridge.ini"
    assert config.read_text() == (ROOT / "callbridge.example.ini").read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640  # API keys and PBX secrets go in there
    assert stat.S_IMODE((root / "var/lib/callbridge").stat().st_mode) == 0o750
    units = sorted(p.name for p in (root / "etc/systemd/system").iterdir())
    assert units == sorted([*(f"callbridge-{s}.service" for s in SERVICES), "callbridge.target"])
    for service in SERVICES:
        settings = unit_settings(service)
        assert settings["Restart"] == ["on-failure"] and settings["User"] == ["callbridge"], service
        assert settings["ProtectSystem"] == ["strict"] and settings["NoNewPrivileges"] == ["yes"], service


def test_installing_again_keeps_the_configuration(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/callbridge").mkdir(parents=True)
    edited = root / "etc/callbridge/callbridge.ini"
    edited.write_text("[api]\nkeys = an-edited-configuration-key\n")
    installed = stage(root)
    assert installed.returncode == 0, installed.stderr
    assert edited.read_text() == "[api]\nkeys = an-edited-configuration-key\n"
    assert "keeping the configuration" in installed.stdout


def test_the_units_verify(deployment: Deployment) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the units are not verified")
    units = deployment.root / "usr/lib/systemd/system"
    if not units.exists():  # the targets the units name (multi-user.target, …) from this host
        shutil.copytree("/lib/systemd/system", units, symlinks=True)
    staged = deployment.root / "etc/systemd/system"
    checked = subprocess.run(
        [analyze, "verify", f"--root={deployment.root}", *sorted(str(p) for p in staged.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")

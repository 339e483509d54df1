"""The files users deploy with: the image and the compose file run the units' commands, the
compose file validates and scales, the install script stages a working tree, and the units verify."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from yarl import URL

from shared.config_file import load_settings
from tests import compose_spec
from tests.conftest import NOTICES
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


def _compose_client() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "tests/compose/compose.test.yml"]


def test_the_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    project = compose_spec.load(COMPOSE_FILES[:1], {"RABBITMQ_PASSWORD": "a-password"})
    assert compose_spec.problems(project) == []
    environment = project["services"]["monitor"]["environment"]
    assert environment["CALLBRIDGE_BUS_AMQP_URL"] == "amqp://callbridge:a-password@rabbitmq:5672/"
    assert project["services"]["api"]["ports"] == ["127.0.0.1:8080:8080"]  # where .env says nothing
    assert project["services"]["recordings"]["ports"] == ["127.0.0.1:8443-8444:8443"]
    assert "ports" not in project["services"]["webhooks"] and "ports" not in project["services"]["monitor"]
    with pytest.raises(compose_spec.ComposeError, match="RABBITMQ_PASSWORD is required"):
        compose_spec.load(COMPOSE_FILES[:1], {})  # no default password
    assert sorted(project["services"]) == sorted(["rabbitmq", *SERVICES])
    merged = compose_spec.load(
        COMPOSE_FILES, {"RABBITMQ_PASSWORD": "a-password"}
    )  # what tests/compose brings up, where an engine runs
    assert compose_spec.problems(merged) == []
    assert "receiver" in merged["services"]
    mounts = merged["services"]["recordings"]["volumes"]
    assert "./tests/compose/callbridge.test.ini:/etc/callbridge/callbridge.ini:ro" in mounts
    assert not any(str(m).startswith("./callbridge.ini:") for m in mounts)  # replaced: same target
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILES[0].read_text().replace('    command: ["api"]', '    comand: ["api"]'))
    refused = compose_spec.problems(compose_spec.load([broken], {"RABBITMQ_PASSWORD": "a-password"}))
    assert any("comand" in problem for problem in refused), refused  # the check can fail
    undeclared = tmp_path / "undeclared.yml"
    undeclared.write_text(COMPOSE_FILES[0].read_text().replace("  callbridge-data:\n", ""))
    assert any(
        "'callbridge-data' is not declared" in p
        for p in compose_spec.problems(compose_spec.load([undeclared], {"RABBITMQ_PASSWORD": "a-password"}))
    )


def test_a_compose_client_where_one_is_installed_accepts_the_file(tmp_path: Path) -> None:
    """Besides the schema: a real client's own reading, on machines that have one."""
    command = _compose_client()
    if command is None:
        NOTICES.append("no compose client here: docker-compose.yml was checked against the schema only")
        return
    environment = {**os.environ, "RABBITMQ_PASSWORD": "a-password"}
    files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
    checked = subprocess.run(
        [*command, *files[:2], "config"], capture_output=True, text=True, env=environment, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "amqp://callbridge:a-password@rabbitmq:5672/" in checked.stdout
    merged = subprocess.run(
        [*command, *files, "config"], capture_output=True, text=True, env=environment, check=False
    )
    assert merged.returncode == 0, merged.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILES[0].read_text().replace('    command: ["api"]', '    comand: ["api"]'))
    refused = subprocess.run(
        [*command, "-f", str(broken), "config", "-q"], capture_output=True, text=True, env=environment
    )
    assert refused.returncode != 0 and "comand" in refused.stderr


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


SCALE_OUT = [ROOT / "docker-compose.yml", ROOT / "docker-compose.scale.yml"]
SCALE_ENV = {"RABBITMQ_PASSWORD": "a-password", "POSTGRES_PASSWORD": "pg-secret", "API_PORT": "8090-8092"}


def test_the_scale_out_file_shares_the_state_in_postgresql_and_balances_the_api() -> None:
    project = compose_spec.load(SCALE_OUT, SCALE_ENV)
    assert compose_spec.problems(project) == []
    services = project["services"]
    for service, key in (("webhooks", "WEBHOOKS"), ("recordings", "RECORDINGS")):
        environment = services[service]["environment"]
        assert environment[f"CALLBRIDGE_{key}_DATABASE"] == "postgresql://callbridge@postgres:5432/callbridge"
        assert environment["PGPASSWORD"] == "pg-secret"  # the password stays out of the URL (and logs)
        assert set(services[service]["depends_on"]) == {"rabbitmq", "postgres"}
        assert environment["CALLBRIDGE_BUS_AMQP_URL"].endswith("@rabbitmq:5672/")  # the base file's, kept
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["api"]["ports"] == ["127.0.0.1:8090-8092:8080"]  # a port per api replica
    assert services["api-balancer"]["ports"] == ["127.0.0.1:8080:8080"]
    mount = next(v for v in services["api-balancer"]["volumes"] if "api-balancer.conf" in v)
    assert (ROOT / mount.split(":")[0]).is_file()
    with pytest.raises(compose_spec.ComposeError, match="POSTGRES_PASSWORD is required"):
        compose_spec.load(SCALE_OUT, {"RABBITMQ_PASSWORD": "a-password"})  # no default password


def test_the_api_balancer_configuration_is_one_nginx_accepts(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        NOTICES.append(
            "no nginx here: deploy/nginx/api-balancer.conf was not checked (apt install nginx-light)"
        )
        return
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {ROOT / 'deploy/nginx/api-balancer.conf'};\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(
        (ROOT / "deploy/nginx/api-balancer.conf").read_text().replace("proxy_pass $api;", "proxy_pas $api;")
    )
    main.write_text(main.read_text().replace(str(ROOT / "deploy/nginx/api-balancer.conf"), str(broken)))
    refused = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "proxy_pas" in refused.stderr  # the check can fail


CLUSTER = [ROOT / "docker-compose.yml", ROOT / "docker-compose.cluster.yml"]
CLUSTER_ENV = {"RABBITMQ_PASSWORD": "a-password", "RABBITMQ_COOKIE": "a-cookie"}


def test_the_cluster_file_runs_three_nodes_and_every_service_on_all_of_them(tmp_path: Path) -> None:
    project = compose_spec.load(CLUSTER, CLUSTER_ENV)
    assert compose_spec.problems(project) == []
    services = project["services"]
    nodes = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
    conf = (ROOT / "deploy/rabbitmq/cluster.conf").read_text()
    listed = {line.split("=", 1)[1].strip() for line in conf.splitlines() if ".classic_config.nodes." in line}
    assert listed == {f"rabbit@{services[node]['hostname']}" for node in nodes}  # the names they get
    assert "cluster_partition_handling = pause_minority" in conf
    for node in nodes:
        spec = services[node]
        assert spec["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == "-setcookie a-cookie"
        assert spec["environment"]["RABBITMQ_CTL_ERL_ARGS"] == "-setcookie a-cookie"  # the health check's
        assert "./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro" in spec["volumes"]
        assert any(str(v).endswith(":/var/lib/rabbitmq") for v in spec["volumes"]), node
    for service in SERVICES:
        environment = services[service]["environment"]
        (tmp_path / "empty.ini").write_text("")
        bus = load_settings(tmp_path / "empty.ini", environ=environment).bus
        assert [URL(url).host for url in bus.urls] == nodes and bus.queue_type == "quorum", service
    with pytest.raises(compose_spec.ComposeError, match="RABBITMQ_COOKIE is required"):
        compose_spec.load(CLUSTER, {"RABBITMQ_PASSWORD": "a-password"})

"""Shared fixtures: the real broker (RabbitMQ at $AMQP_URL: a test that needs it fails loudly when
it is absent, and works under a prefix of its own), the example scenarios and their check, a
recorder that waits for events without sleeping, notices of what this machine cannot run."""

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from simulation.compare import Webhook, compare, read_webhooks
from tests.broker import left_on_broker, new_prefix, ours, owners, purge, purge_earlier
from tests.deployment import Deployment, stage
from tests.fakes import Recorder
from tests.postgres import POSTGRES_URL, create_schema, drop_schema, in_schema, left_in_database

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "scenarios"  # callbridge's own examples, each with its expected webhooks
# The contract's scenarios, where a folder `shared` lies beside the checkout (CI has one): one
# more test runs them (tests/scenarios/test_contracts.py); without it the run says so at the end.
CONTRACTS = ROOT.parent / "shared" / "scenarios"
NOTICES: list[str] = []  # one line each at the end of the run: what was not run here, and why


AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def reachable(url: str, port: int, what: str, remedy: str) -> str:
    """`url`, once something answers at its host and port; else the test fails loudly."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), timeout=3).close()
    except OSError as error:
        pytest.fail(f"{what} not reachable at {parts.hostname}:{parts.port or port} ({error}); {remedy}")
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return reachable(
        AMQP_URL,
        5672,
        "RabbitMQ",
        "start it with `rabbitmq-server -detached` or set AMQP_URL. Deselect with -m 'not rabbitmq'.",
    )


@pytest.fixture
async def broker_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A prefix of this test's own on the broker; whatever is under it is deleted afterwards."""
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        await purge(amqp_url, prefix)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return reachable(
        POSTGRES_URL, 5432, "PostgreSQL", "start it or set POSTGRES_URL. Deselect with -m 'not postgresql'."
    )


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A database address of this test's own: a schema in $POSTGRES_URL's database, dropped with
    everything in it afterwards."""
    schema = await create_schema(postgres_url)
    try:
        yield in_schema(postgres_url, schema)
    finally:
        await drop_schema(postgres_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend of `shared.database` in turn: a file, then a PostgreSQL schema (contract suites)."""
    if request.param == "sqlite":
        return str(tmp_path / "database.db")
    address: str = request.getfixturevalue("postgres_database")
    return address


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """callbridge installed by `deploy/debian/install.sh` into a throwaway root, once a session."""
    root = tmp_path_factory.mktemp("root")
    installed = stage(root)
    assert installed.returncode == 0, f"install.sh failed:\n{installed.stdout}\n{installed.stderr[-3000:]}"
    return Deployment(root)


def expected_webhooks(name: str, *, recordings: bool = True, folder: Path = EXAMPLES) -> list[Webhook]:
    """An example's expected webhooks; without `recordings`, only its call events (for tests
    that run no recordings service)."""
    lines = (folder / f"{name}.expected.jsonl").read_text().splitlines()
    expected = read_webhooks(lines, f"{name}.expected.jsonl")
    return expected if recordings else [w for w in expected if "FILES" not in w]


def check_webhooks(name: str, actual: list[str], *, recordings: bool = True, folder: Path = EXAMPLES) -> str:
    """Compare `actual` JSON lines with example `name`'s expected webhooks (`callbridge scenario
    check`'s comparison); "" on a match, else the report."""
    expected = expected_webhooks(name, recordings=recordings, folder=folder)
    comparison = compare(expected, read_webhooks(actual, "actual"))
    return "" if comparison.matched else comparison.report()


# --- the compose tests (tests/compose/): run where a Docker engine answers, else deselected ------


def _no_docker_engine() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client"
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30 s"
    if info.returncode == 0:
        return None
    lines = (info.stderr or info.stdout).strip().splitlines()
    return lines[-1] if lines else f"docker info exited with {info.returncode}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # a test that reaches the broker says so, whichever folder it is in
        if "amqp_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rabbitmq)
        if "postgres_url" in getattr(item, "fixturenames", ()) or "postgresql" in getattr(
            getattr(item, "callspec", None), "id", ""
        ):
            item.add_marker(pytest.mark.postgresql)
    if not CONTRACTS.is_dir():
        NOTICES.append(f"contract scenarios not run: no folder {CONTRACTS} beside the checkout")
    compose = [item for item in items if item.get_closest_marker("docker")]
    if not compose or (why := _no_docker_engine()) is None:
        return
    config.hook.pytest_deselected(items=compose)
    items[:] = [item for item in items if not item.get_closest_marker("docker")]
    NOTICES.append(
        f"{len(compose)} compose test(s) deselected, not run: no Docker engine here ({why}); "
        "they bring docker-compose.yml up wherever one runs"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for notice in dict.fromkeys(NOTICES):
        terminalreporter.write_line(notice, yellow=True, bold=True)
    left = config.stash.get(LEFT_ON_BROKER, None)
    if left:
        terminalreporter.write_sep("=", f"the tests left {len(left)} name(s) on the broker", red=True)
        terminalreporter.write_line(", ".join(left[:20]) + (" …" if len(left) > 20 else ""), red=True)
        terminalreporter.write_line(f"left by: {', '.join(owners(left))}", red=True)
    if schemas := config.stash.get(LEFT_IN_DATABASE, None):
        terminalreporter.write_sep("=", f"the tests left {len(schemas)} schema(s) in PostgreSQL", red=True)
        terminalreporter.write_line(", ".join(schemas[:20]), red=True)


LEFT_ON_BROKER = pytest.StashKey[list[str]]()
LEFT_IN_DATABASE = pytest.StashKey[list[str]]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that used the broker fails if anything under its prefixes is left on it
    (tests/broker.py), one that used PostgreSQL if a schema of its own is left in it
    (tests/postgres.py). What an earlier, killed run left is removed, and the run says so."""
    if any(item.get_closest_marker("postgresql") for item in session.items):
        schemas, earlier = left_in_database()
        if earlier:
            NOTICES.append(f"dropped {len(earlier)} schema(s) an earlier run left in PostgreSQL")
        if schemas:
            session.config.stash[LEFT_IN_DATABASE] = schemas
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not any(item.get_closest_marker("rabbitmq") for item in session.items):
        return
    queues, exchanges = left_on_broker()
    names = [*queues, *exchanges]
    left = ours(names)
    if earlier_names := sorted(set(names) - set(left)):
        asyncio.run(purge_earlier(AMQP_URL, earlier_names))
        NOTICES.append(f"deleted {len(earlier_names)} name(s) an earlier run left on the broker")
    if left:
        session.config.stash[LEFT_ON_BROKER] = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

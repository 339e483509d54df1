"""Bad input on the command line: every subcommand, given bad arguments or a bad configuration,
exits non-zero with one line that names the problem, and never a traceback. Nothing here reaches
the broker: the bad input is found first (the configurations point at a port nobody serves, so a
command that tried would say "RabbitMQ not reachable" instead of the expected problem)."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.webhooks.store import DeliveryStore
from tests.conftest import EXAMPLES

NOWHERE = "amqp://guest:guest@127.0.0.1:1/"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]  # after `callbridge --config FILE`; {tmp} is the case's folder
    expected: str  # in the one error line
    config: str = ""  # the .ini file's sections, after [bus] amqp_url = NOWHERE
    env: dict[str, str] = field(default_factory=dict)
    status: int = 2
    secret: str = ""  # must appear nowhere in the output


SCENARIO = str(EXAMPLES / "outgoing-transfer.yaml")
GOOD_CONFIG = f"[webhooks]\ndatabase = {{tmp}}/store/webhooks.db\n[api]\nkeys = {'k' * 20}\n"
CASES: dict[str, Case] = {
    # --- demo -----------------------------------------------------------------------------------
    "demo: negative rate": Case(
        ("demo", "--calls-per-minute", "-1"), "--calls-per-minute: must be at least 0"
    ),
    "demo: NaN rate": Case(("demo", "--calls-per-minute", "nan"), "--calls-per-minute: must be at least 0"),
    "demo: short key": Case(("demo", "--api-key", "short"), "--api-key: an API key must be at least 16"),
    "demo: port too high": Case(
        ("demo", "--api-port", "99999"), "--api-port: must be at least 0 and at most"
    ),
    "demo: negative port": Case(("demo", "--recordings-port", "-5"), "--recordings-port: must be at least 0"),
    "demo: no duration": Case(("demo", "--duration", "0"), "--duration: must be more than 0"),
    "demo: not a web URL": Case(("demo", "--webhook-url", "ftp://x"), "must start with http:// or https://"),
    "demo: missing directory": Case(("demo", "--directory", "{tmp}/none.yaml"), "cannot read"),
    "demo: port taken": Case(
        ("demo", "--api-port", "{port}", "--recordings-port", "0", "--duration", "30"),
        "cannot serve HTTP on 127.0.0.1:{port}",
        status=1,
    ),
    # --- scenario run, check, generate ------------------------------------------------------------
    "run: no such file": Case(("scenario", "run", "{tmp}/none.yaml"), "none.yaml: cannot read"),
    "run: speed 0": Case(
        ("scenario", "run", SCENARIO, "--via", "fake-3cx", "--speed", "0"), "--speed: must be"
    ),
    "run: time zone": Case(("scenario", "run", SCENARIO, "--timezone", "Mars/Olympus"), "unknown time zone"),
    "run: binary file": Case(("scenario", "run", "{tmp}/binary.yaml"), "binary.yaml: not a text file"),
    "run: nested deep": Case(("scenario", "run", "{tmp}/deep.yaml"), "nested too deeply"),
    "run: bad YAML": Case(("scenario", "run", "{tmp}/broken.yaml"), "not valid YAML at line 2"),
    "run: endless t": Case(("scenario", "run", "{tmp}/endless.yaml"), "t must be a number of seconds from 0"),
    "run: past 9999": Case(("scenario", "run", "{tmp}/late.yaml"), "would run past the year 9999"),
    "run: impossible": Case(("scenario", "run", "{tmp}/impossible.yaml"), "impossible.yaml: step 1"),
    "run: unwritable folder": Case(
        ("scenario", "run", SCENARIO, "--recordings-dir", "/proc/x"), "cannot write in"
    ),
    "check: not JSON": Case(("scenario", "check", "{tmp}/broken.yaml", "-"), "broken.yaml:1: not JSON"),
    "check: no such file": Case(("scenario", "check", "{tmp}/none.jsonl", "-"), "none.jsonl: cannot read"),
    "generate: endless": Case(("scenario", "generate", "--minutes", "inf"), "--minutes: must be more than 0"),
    "generate: offset": Case(("scenario", "generate", "--start", "2024-03-04T09:00:00+02:00"), "UTC offset"),
    # --- recordings ---------------------------------------------------------------------------------
    "convert: no folder": Case(("recordings", "convert", "{tmp}/none"), "none is not a folder"),
    "convert: no workers": Case(("recordings", "convert", "{tmp}", "--workers", "0"), "--workers: must be"),
    "convert: unwritable out": Case(
        ("recordings", "convert", "{tmp}", "--out", "/proc/x"), "cannot write in"
    ),
    "recordings: short secret": Case(
        ("recordings",), "[recordings] token_secret", config="[recordings]\ntoken_secret = x\n"
    ),
    "recordings: no secret": Case(("recordings",), "[recordings] token_secret is required"),
    "recordings: not a URL": Case(
        ("recordings",), "[recordings] public_url", config="[recordings]\npublic_url = not a url\n"
    ),
    # --- webhooks -----------------------------------------------------------------------------------
    "attempts: limit": Case(("webhooks", "attempts", "--limit", "-1"), "--limit: must be at least 1"),
    "attempts: since overflow": Case(
        ("webhooks", "attempts", "--since", "99999999999d"), "before any delivery", config=GOOD_CONFIG
    ),
    "dead list: no store": Case(
        ("webhooks", "dead", "list"),
        "no delivery store at {tmp}/none/webhooks.db",
        config="[webhooks]\ndatabase = {tmp}/none/webhooks.db\n",
    ),
    "dead replay: since": Case(
        ("webhooks", "dead", "replay", "--since", "yesterdayish"),
        "--since 'yesterdayish'",
        config=GOOD_CONFIG,
    ),
    "webhooks: store is a folder": Case(
        ("webhooks",),
        "the delivery store {tmp} cannot be used",
        config="[webhooks]\ndatabase = {tmp}\n",
        status=1,
    ),
    "webhooks: garbage store": Case(
        ("webhooks",), "file is not a database", config="[webhooks]\ndatabase = {tmp}/binary.yaml\n", status=1
    ),
    "webhooks: no delays": Case(
        ("webhooks",), "at least one delay", config="[webhooks]\nretry_schedule = ,,,\n"
    ),
    # --- the services' configuration -------------------------------------------------------------
    "monitor: password with a slash": Case(
        ("monitor",),
        "[bus] amqp_url (or $CALLBRIDGE_BUS_AMQP_URL): Value error, not a valid URL",
        env={"CALLBRIDGE_BUS_AMQP_URL": "amqp://guest:pass/word@127.0.0.1:99999/"},
        secret="pass/word",
    ),
    "monitor: endless speed": Case(
        ("monitor",), "[simulator] speed", env={"CALLBRIDGE_SIMULATOR_SPEED": "inf"}
    ),
    "monitor: impossible scenario": Case(
        ("monitor",), "impossible.yaml: step 1", config="[simulator]\nscenario = {tmp}/impossible.yaml\n"
    ),
    "api: no keys": Case(("api",), "no API key is configured"),
    "api: bracketed host": Case(("api",), "is not a host name", config="[api]\nhttp_host = [::1]\n"),
    "pbx check: not a URL": Case(("pbx", "check"), "[pbx] url", config="[pbx]\nurl = pbx.example.com\n"),
    "pbx check: no client": Case(
        ("pbx", "check"), "[pbx] client_id, client_secret", config="[pbx]\nurl = http://127.0.0.1:1\n"
    ),
    "health: unknown service": Case(("health", "pbx"), "argument service: invalid choice: 'pbx'"),
    "health: no port": Case(("health", "api"), "[api] http_port is 0", config="[api]\nhttp_port = 0\n"),
    # --- the configuration file itself -------------------------------------------------------------
    "config: missing": Case(("--config", "{tmp}/none.ini", "monitor"), "cannot read configuration"),
    "config: binary": Case(("--config", "{tmp}/binary.yaml", "monitor"), "not a text file"),
    "config: not ini": Case(("monitor",), "not a valid .ini file: line(s) 3", config="just words\n"),
    "config: DEFAULT": Case(("monitor",), "unknown section [DEFAULT]", config="[DEFAULT]\nlevel = DEBUG\n"),
    "config: endpoint name": Case(
        ("webhooks",), "an endpoint name is", config="[webhook: crm]\nurl = http://x\n"
    ),
    "config: unknown key": Case(
        ("monitor",), "unknown key 'colour' in [log]", config="[log]\ncolour = red\n"
    ),
    "config: misspelt variable": Case(
        ("monitor",),
        "unknown environment variable CALLBRIDGE_BUS_AMQPURL",
        env={"CALLBRIDGE_BUS_AMQPURL": "x"},
    ),
    "config: huge speed": Case(
        ("monitor",), "[simulator] speed", env={"CALLBRIDGE_SIMULATOR_SPEED": "1e300"}
    ),
}


def files(tmp: Path) -> None:
    """The bad files the cases name."""
    (tmp / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (tmp / "deep.yaml").write_text("[" * 5000)
    (tmp / "broken.yaml").write_text("start: x\n  steps: [\n")
    (tmp / "endless.yaml").write_text(
        'start: "2024-01-01T09:00:00"\nsteps:\n  - {t: .inf, do: register, dn: "101"}\n'
    )
    (tmp / "late.yaml").write_text(
        'start: "9999-12-31T23:59:59"\nsteps:\n  - {t: 10, do: register, dn: "101"}\n'
    )
    (tmp / "impossible.yaml").write_text(
        'start: "2024-01-01T09:00:00"\nsteps:\n  - {t: 0, do: answer, call: A, dn: "101"}\n'
    )
    asyncio.run(made(tmp / "store" / "webhooks.db"))


async def made(path: Path) -> None:
    """An empty delivery store at `path`, as the webhooks service leaves one."""
    await (await DeliveryStore.open(path)).close()


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    port: str  # the port taken while the case ran


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case run once, two at a time (each is a process of its own)."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])

    def run(name: str) -> Outcome:
        case, tmp = CASES[name], tmp_path_factory.mktemp("case")
        files(tmp)
        config = tmp / "callbridge.ini"
        config.write_text(f"[bus]\namqp_url = {NOWHERE}\n" + case.config.format(tmp=tmp))
        argv = [arg.format(tmp=tmp, port=port) for arg in case.argv]
        if argv[0] != "--config":
            argv = ["--config", str(config), *argv]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLBRIDGE_")}
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *argv],
            env=environment | case.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr.replace(str(tmp), "{tmp}"), port)

    with taken, ThreadPoolExecutor(2) as pool:
        yield dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gets_one_line_naming_the_problem(name: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[name], outcomes[name]
    output = outcome.stdout + outcome.stderr
    assert "Traceback" not in output, output
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("callbridge: error:")]
    assert len(errors) == 1, outcome.stderr
    assert case.expected.replace("{port}", outcome.port) in errors[0], errors[0]
    assert outcome.status == case.status, outcome
    if case.secret:
        assert case.secret not in output


def test_every_subcommand_is_tried() -> None:
    tried = {
        " ".join(a for a in case.argv[:3] if not a.startswith(("-", "{", "/"))) for case in CASES.values()
    }
    for command in ("monitor", "api", "webhooks", "recordings", "demo", "health", "pbx check"):
        assert any(t.startswith(command) for t in tried), command
    for command in ("scenario run", "scenario check", "scenario generate", "recordings convert",
                    "webhooks attempts", "webhooks dead"):  # fmt: skip
        assert any(t.startswith(command) for t in tried), command

"""Configuration: the .ini, environment overrides, and errors that name the key."""

import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest

from shared.config_file import load_settings
from shared.logging import configure_logging, endpoint_address, redact
from shared.settings import ConfigError, EndpointSettings

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callbridge.ini"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.bus.exchange == "callbridge"
    assert settings.pbx.driver == "simulator"


def test_the_example_file_is_valid_and_documents_every_key() -> None:
    example = ROOT / "callbridge.example.ini"
    settings = load_settings(example, environ={})
    text = example.read_text()
    sections = [(name, type(model).model_fields) for name, model in settings if name != "endpoints"]
    sections.append(("webhook:NAME", EndpointSettings.model_fields))
    for section, fields in sections:
        for key in fields:
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"[{section}] {key} is not in the example"


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[pbx]\ntimezone = Europe/Prague\n[simulator]\ncalls_per_minute = 12\n")
    settings = load_settings(
        path, environ={"CALLBRIDGE_SIMULATOR_CALLS_PER_MINUTE": "30", "CALLBRIDGE_LOG_LEVEL": "debug"}
    )
    assert settings.pbx.timezone == "Europe/Prague"
    assert settings.simulator.calls_per_minute == 30
    assert settings.log.level == "DEBUG"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[monitor]\nid = pbx-east\n")
    assert load_settings(None, environ={"CALLBRIDGE_CONFIG": str(path)}).monitor.source == "pbx-east"


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (
            "[pbx]\ntimezone = Mars/Olympus\n",
            {},
            "[pbx] timezone (or $CALLBRIDGE_PBX_TIMEZONE): Value error, unknown time zone",
        ),
        ("[simulator]\ncalls_per_minute = -1\n", {}, "[simulator] calls_per_minute"),
        ("", {"CALLBRIDGE_BUS_PREFETCH": "lots"}, "[bus] prefetch (or $CALLBRIDGE_BUS_PREFETCH)"),
        ("[bus]\namqp_url = http://x\n", {}, "[bus] amqp_url"),
        ("[pbx]\ndrivr = 3cx\n", {}, "unknown key 'drivr' in [pbx]"),
        ("[webhooks]\nshards = 16\n", {}, "[webhooks] shards: removed"),
        ("[pbxx]\n", {}, "unknown section [pbxx]"),
        ("not an ini", {}, "not a valid .ini file"),
    ],
)
def test_bad_configuration_names_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=environ)
    assert message in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(tmp_path / "absent.ini", environ={})


def test_secrets_in_urls_are_redacted() -> None:
    assert redact("amqp://bob:s3cret@rabbit:5672/vh") == "amqp://bob:***@rabbit:5672/vh"
    # a password with an unencoded / or @ is still hidden whole
    assert redact("amqp://bob:Super@Secret/123@rabbit:1/") == "amqp://bob:***@rabbit:1/"
    assert redact("at amqp://bob:abc/def@rabbit/: refused") == "at amqp://bob:***@rabbit/: refused"
    assert (
        redact("connect to amqps://bob:s3cret@rabbit/ failed") == "connect to amqps://bob:***@rabbit/ failed"
    )
    # PostgreSQL takes the password as a URL parameter too, and libpq echoes conninfo strings
    assert redact("postgresql://db/cb?sslmode=require&password=s3cret&x=1") == (
        "postgresql://db/cb?sslmode=require&password=***&x=1"
    )
    assert redact("host=db password=s3cret dbname=cb") == "host=db password=*** dbname=cb"


def test_tokens_in_web_addresses_are_redacted() -> None:
    assert redact("POST https://crm.example/hook?token=s3cret&x=1 failed") == (
        "POST https://crm.example/hook?*** failed"
    )
    assert endpoint_address("https://hooks.slack.com/services/T0/B0/s3cret") == "https://hooks.slack.com/…"
    assert endpoint_address("http://crm.example:8080/?token=s3cret") == "http://crm.example:8080/…"
    assert endpoint_address("http://crm.example") == "http://crm.example/"


def test_configuration_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"CALLBRIDGE_BUS_AMQP_URL": "ftp://bob:s3cret@rabbit/"})
    assert "[bus] amqp_url" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_log_lines_never_carry_url_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_lines=True)
    logging.getLogger("test").warning("cannot reach %s", "amqp://bob:s3cret@rabbit/")
    line = capsys.readouterr().err.strip()
    assert json.loads(line)["message"] == "cannot reach amqp://bob:***@rabbit/"


def test_webhook_endpoints(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[webhook:crm]
url = https://crm.example.com/hook
format = json
events = call.ringing, call.ended
secret = whsec_old
[webhook:help-desk]
url = http://127.0.0.1:9000/
""",
    )
    settings = load_settings(
        path,
        environ={
            "CALLBRIDGE_WEBHOOK_CRM_SECRET": "whsec_new whsec_old",
            "CALLBRIDGE_WEBHOOK_HELP_DESK_TIMEOUT": "2.5",
        },
    )
    crm, desk = settings.endpoints["crm"], settings.endpoints["help-desk"]
    assert [s.get_secret_value() for s in crm.secret] == ["whsec_new", "whsec_old"]
    assert crm.events == ("call.ringing", "call.ended")
    assert (desk.format, desk.timeout, desk.events) == ("classic", 2.5, ("#",))
    assert "whsec_new" not in repr(settings)  # secrets never print


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[webhook:crm]\nformat = json\nurl = http://x/\n",
            "[webhook:crm]: Value error, format = json needs a secret",
        ),
        (
            "[webhook:crm]\nurl = ftp://x/\n",
            "[webhook:crm] url (or $CALLBRIDGE_WEBHOOK_CRM_URL): Value error",
        ),
        ("[webhook:crm]\n", "[webhook:crm] url (or $CALLBRIDGE_WEBHOOK_CRM_URL): Field required"),
        (
            "[webhook:crm]\nurl = http://x/\nsecret = hunter2\n",
            "each secret must be a Standard Webhooks secret",
        ),
        ("[webhook:crm]\nurl = http://x/\nsecret = whsec_abc\n", "format = classic is never signed"),
        ("[webhook:c r m]\nurl = http://x/\n", "an endpoint name is letters"),
        ("[webhook:crm]\nurl = http://x/\nretries = 3\n", "unknown key 'retries' in [webhook:crm]"),
        ("[webhooks]\nretry_schedule = 5s, soon\n", "'soon' is not a duration"),
    ],
)
def test_bad_endpoints_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_retry_schedule_units() -> None:
    settings = load_settings(None, environ={"CALLBRIDGE_WEBHOOKS_RETRY_SCHEDULE": "500ms, 5s, 5m, 2h, 1d"})
    assert settings.webhooks.retry_schedule == (0.5, 5, 300, 7200, 86400)


def test_the_readme_reference_is_generated_from_the_example_and_names_every_key() -> None:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    table = generator.reference((ROOT / "callbridge.example.ini").read_text())
    readme = (ROOT / "README.md").read_text()
    assert f"{generator.START}\n\n{table}\n{generator.END}" in readme, "run `make readme`"
    listed = set(re.findall(r"^\| `(\w+)` \| .* \| `CALLBRIDGE_([\w<>]+?)_\1`", table.upper(), re.M))
    settings = load_settings(None, environ={})
    expected = {
        (key.upper(), section.upper())
        for section, model in settings
        if section != "endpoints"
        for key in type(model).model_fields
    } | {(key.upper(), "WEBHOOK_<NAME>") for key in EndpointSettings.model_fields}
    assert listed == expected

"""Webhook templates: compiled at start-up (errors name the file and line), rendered in a bounded
sandbox with strict names, read back as HTTP requests; the presets compile and their settings
ask for what each needs."""

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.webhooks.outgoing import WebhookRequest, described
from services.webhooks.rendering import context, facts
from services.webhooks.request_text import parse, remembered
from services.webhooks.templates import RenderError, TemplateSet
from shared.settings import PRESETS, ConfigError, EndpointSettings
from tests.factories import make_call_ended, make_call_ringing

AT = datetime(2024, 1, 1, 9, tzinfo=UTC)


def endpoint(folder: Path) -> EndpointSettings:
    return EndpointSettings(url="https://crm.test/api/", format="template", templates=folder)


def templates(tmp_path: Path, **files: str) -> TemplateSet:
    for name, text in files.items():
        (tmp_path / f"{name.replace('_', '.')}.http").write_text(text)
    return TemplateSet.of(endpoint(tmp_path))


def test_a_syntax_error_stops_the_start_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"call\.ended\.http, line 3: unexpected '}'"):
        templates(tmp_path, call_ended="POST {{ endpoint.url }}\n\n{{ event.answered }\n{{ x }}\n")


def test_a_file_for_no_event_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no event type 'call\.rang'"):
        templates(tmp_path, call_rang="POST https://x.test/\n")


def test_an_unknown_name_fails_the_rendering_with_the_file(tmp_path: Path) -> None:
    found = templates(tmp_path, call_ringing="POST {{ endpoint.url }}\n\n{{ event.no_such_field }}")
    ring = make_call_ringing()
    with pytest.raises(RenderError, match=r"call\.ringing\.http: UndefinedError"):
        found.render("call.ringing", context("crm", endpoint(tmp_path), ring, AT, {}))


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in range(6000) %}{% for j in range(6000) %}{% endfor %}{% endfor %}",  # items
        "{{ 'x' * 2000000 }}",  # a repetition
        "{{ 2 ** 100000 }}",  # an exponent
        "{% for i in range(9000) %}{{ 'y' * 1000 }}{% endfor %}",  # output over 1 MB
        "{{ ''.ljust(300000000) }}",  # a width, before it is built
        "{{ '%300000000s' % 'x' }}{{ '%300000000s' | format('x') }}",
        "{{ '{:>300000000}'.format(1) }}",
        "{{ 'x' | center(300000000) }}",
        "{{ (((9 ** 64) ** 64) ** 64) ** 64 }}",  # a power too big to compute in time
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for i in range(9999) %}{% for c in 'x' * 999999 %}{{ c.upper() }}{% endfor %}{% endfor %}",
    ],
)
def test_a_rendering_is_bounded(tmp_path: Path, body: str) -> None:
    found = templates(tmp_path, call_ringing=f"POST https://x.test/\n\n{body}")
    tracemalloc.start()
    try:
        with pytest.raises(RenderError):
            found.render("call.ringing", context("crm", endpoint(tmp_path), make_call_ringing(), AT, {}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # refused before it was built, not after


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    found = templates(tmp_path, call_ringing="POST https://x.test/\n\n{{ ''.__class__.__mro__ }}")
    with pytest.raises(RenderError, match=r"SecurityError|UndefinedError"):
        found.render("call.ringing", context("crm", endpoint(tmp_path), make_call_ringing(), AT, {}))


def test_a_rendering_reads_back_as_a_request() -> None:
    text = (
        "\n  PATCH https://crm.test/calls/7\nAuthorization: Bearer t0k\nContent-Type: application/json\n"
        "Callbridge-Remember: call = result.CALL_ID\nCallbridge-Attach: file = https://rec.test/a.mp3\n\n"
        '{"a": 1}\n'
    )
    request = parse(text, "x.http")
    assert request is not None
    assert (request.method, request.url, request.body) == ("PATCH", "https://crm.test/calls/7", b'{"a": 1}')
    assert request.headers["authorization"] == "Bearer t0k"
    assert "callbridge-remember" not in request.headers and "callbridge-attach" not in request.headers
    assert request.remember == (("call", "result.CALL_ID"),)
    assert request.attach == ("file", "https://rec.test/a.mp3")
    assert parse("  \n\n ", "x.http") is None  # blank: nothing is sent for this event


@pytest.mark.parametrize(
    "text",
    [
        "SEND https://x.test/s3cr3t",
        "POST x.test/s3cr3t",
        "POST https://x.test/\nAuthorization Bearer s3cr3t",
        "POST https://x.test/\nCallbridge-Remember: s3cr3t",
    ],
)
def test_a_malformed_rendering_is_named_without_its_secrets(text: str) -> None:
    with pytest.raises(ValueError, match=r"x\.http") as refused:
        parse(text, "x.http")
    assert "s3cr3t" not in str(refused.value)  # the reason is kept with the dead letter


def test_remote_ids_are_read_from_the_answer_by_path() -> None:
    answer = '{"result": {"CALL_ID": "externalCall.9f"}, "data": [{"id": 42}], "nested": {"x": 1}}'
    rules = (("call", "result.CALL_ID"), ("log", "data.0.id"), ("whole", "nested"), ("missing", "a.b"))
    rules += (("past the end", "data.5.id"), ("not a list", "result.0"))
    assert remembered(rules, answer) == {"call": "externalCall.9f", "log": "42"}
    assert remembered(rules, "not json") == {}


def test_a_template_sees_the_chain_it_remembered() -> None:
    ring, end = make_call_ringing(link=0), make_call_ended(link=1)
    memory = facts(ring, {}) | {"call": "77"}
    seen = context("crm", endpoint(Path(".")), end, AT, memory)
    assert seen["chain"]["call.ringing"]["extension"] == ring.extension
    assert seen["earlier"] == {}  # nothing of link 1 yet
    assert seen["remote"] == {"call": "77"}
    assert seen["event"]["call_id"] == end.call_id and seen["classic"]["finishtype"] == "Ok"
    later = make_call_ringing(link=0, extension="999")
    assert set(facts(later, memory)) == {
        "event:call.ringing:0"
    }  # the chain's first ringing stays the one it knows


def test_the_attempt_log_keeps_no_secret() -> None:
    body = b'{"RECORD_URL": "https://rec.test/a.mp3?expires=1&token=l1nkt0k", "api": "crmt0k"}'
    request = WebhookRequest(
        "POST",
        "https://crm.test/rest/1/s3cr3t/method.json?api_token=abc",
        body=body,
        headers={"Authorization": "Bearer t0k", "content-type": "application/json", "x-token": "crmt0k"},
        attach=("file", "https://rec.test/b.mp3?token=l1nkt0k"),
    )
    text = described(request, ["crmt0k"])
    for secret in ("s3cr3t", "abc", "t0k", "l1nkt0k", "crmt0k"):
        assert secret not in text
    assert text.startswith("POST https://crm.test/…") and '"RECORD_URL": "https://rec.test/a.mp3?***' in text


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_compiles(preset: str) -> None:
    token = {"token": "t"} if preset in ("hubspot", "pipedrive") else {}
    found = TemplateSet.of(EndpointSettings(url="https://crm.test", format=preset, **token))  # type: ignore[arg-type]
    assert found.types and found.origin == preset


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"format": "template"}, "templates = FOLDER"),
        ({"format": "zammad", "templates": "."}, "templates = FOLDER"),
        ({"format": "hubspot"}, "API token"),
        ({"format": "slack", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "never signed"),
    ],
)
def test_each_format_asks_for_what_it_needs(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        EndpointSettings(url="https://crm.test", **fields)  # type: ignore[arg-type]

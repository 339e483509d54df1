"""The CRM presets end to end: example scenarios played through the services in one process
(`scenario run --endpoints`), delivered to fakes of Zammad, Bitrix24, HubSpot, Pipedrive and Slack
that check what their documented APIs require; the recordings' MP3s are real and Pipedrive gets
them uploaded. Also `webhooks preview`, for every format, sends nothing."""

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.config_file import load_settings
from simulation import playing
from tests.crm_fakes import BITRIX_CODE, HUBSPOT_TOKEN, PIPEDRIVE_TOKEN, ZAMMAD_TOKEN, Crms, serving
from tests.mp3 import decode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


SUMMARY = """POST {{ endpoint.url }}?chain={{ event.chain_id | urlencode }}
Content-Type: application/json

{{ {"answered": event.answered, "rang": (chain.get("call.ringing") or {}).get("extension", "")} | tojson }}
"""


def configuration(tmp_path: Path, base: str) -> Path:
    path, templates = tmp_path / "callbridge.ini", tmp_path / "templates"
    templates.mkdir()
    (templates / "call.ended.http").write_text("{% if event.chain_ended %}" + SUMMARY + "{% endif %}")
    (templates / "call.ringing.http").write_text("{# remembered, not sent #}")
    path.write_text(
        f"""
[recordings]
public_url = {base}
token_secret = 0123456789abcdef0123456789abcdef

[webhook:zammad]
url = {base}/api/v1/cti/{ZAMMAD_TOKEN}
format = zammad

[webhook:bitrix]
url = {base}/rest/1/{BITRIX_CODE}/
format = bitrix24

[webhook:hubspot]
url = {base}
format = hubspot
token = {HUBSPOT_TOKEN}

[webhook:pipedrive]
url = {base}
format = pipedrive
token = {PIPEDRIVE_TOKEN}

[webhook:slack]
url = {base}/services/T0/B0/s3cr3t
format = slack

[webhook:classic]
url = {base}/hooks/classic

[webhook:json]
url = {base}/hooks/json
format = json
secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

[webhook:custom]
url = {base}/hooks/custom
format = template
templates = {templates}
"""
    )
    return path


@contextlib.asynccontextmanager
async def crms(tmp_path: Path) -> AsyncIterator[tuple[Crms, Path]]:
    fakes = Crms(archive=tmp_path / "archive")
    async with serving(fakes) as base:
        yield fakes, configuration(tmp_path, base)


async def played(config: Path, scenario: str, tmp_path: Path, **options: object) -> tuple[int, str]:
    out = io.StringIO()
    run = playing.ScenarioRun(EXAMPLES / scenario, archive_dir=tmp_path / "archive", **options)  # type: ignore[arg-type]
    status = await asyncio.to_thread(playing.run_scenario, load_settings(config), run, out)
    return status, out.getvalue()


async def test_answered_calls_with_recordings_reach_every_crm(tmp_path: Path) -> None:
    async with crms(tmp_path) as (fakes, config):
        status, _ = await played(config, "recording-variants.yaml", tmp_path, endpoints=True)
    assert status == 0  # every request accepted by its fake
    answering = {"231023150431_5120": "205", "231023150651_5121": "207", "231023150801_5122": "206"}
    # Zammad: a call per chain, newCall → answer → hangup, cleared normally
    assert {call: [e["event"] for e in events] for call, events in fakes.zammad.items()} == {
        chain: ["newCall", "answer", "hangup"] for chain in answering
    }
    assert {c: e[2]["answeringNumber"] for c, e in fakes.zammad.items()} == answering
    assert {e[2]["cause"] for e in fakes.zammad.values()} == {"normalClearing"}
    # Bitrix24: registered for the ringing extension, finished with the talk time, records attached
    bitrix = sorted(fakes.bitrix.values(), key=lambda call: call["register"]["CALL_START_DATE"])
    assert [c["register"]["USER_PHONE_INNER"] for c in bitrix] == list(answering.values())
    assert [(c["finish"]["STATUS_CODE"], c["finish"]["DURATION"]) for c in bitrix] == [
        (200, 121),
        (200, 54),
        (200, 47),
    ]
    assert [len(c.get("records", [])) for c in bitrix] == [1, 0, 1]  # 207 does not record
    # HubSpot: one engagement per chain, updated to completed, with the duration and the recording
    hubspot = sorted(fakes.hubspot.values(), key=lambda call: call["hs_timestamp"])
    assert [(c["hs_call_status"], c["hs_call_duration"]) for c in hubspot] == [
        ("COMPLETED", 120700),
        ("COMPLETED", 54400),
        ("COMPLETED", 46600),
    ]
    assert ["/webapi/recording/" in c.get("hs_call_recording_url", "") for c in hubspot] == [
        True,
        False,
        True,
    ]
    # Pipedrive: a call log per chain, and the MP3 itself uploaded to it
    logs = sorted(fakes.pipedrive.values(), key=lambda log: log["start_time"])
    assert [(log["outcome"], log["duration"], log["start_time"]) for log in logs] == [
        ("connected", 121, "2023-10-23 15:04:31"),
        ("connected", 54, "2023-10-23 15:06:51"),
        ("connected", 47, "2023-10-23 15:08:01"),
    ]
    uploads = [log.get("recordings", []) for log in logs]
    assert [len(u) for u in uploads] == [1, 0, 1]
    name, mp3 = uploads[0][0]
    archived = next((tmp_path / "archive").rglob(name))
    assert mp3 == archived.read_bytes() and decode(archived).seconds > 5
    assert fakes.slack == []  # nobody missed
    # the other formats, from the same run: classic GETs and POSTs, signed JSON, a template's own
    sent = {
        name: [m for m, p in fakes.hooks if p == f"/hooks/{name}"] for name in ("classic", "json", "custom")
    }
    assert sent["custom"] == ["POST"] * 3 and len(sent["json"]) > len(sent["classic"]) > 3


async def test_missed_calls_are_missed_in_every_crm_and_alerted_in_slack(tmp_path: Path) -> None:
    async with crms(tmp_path) as (fakes, config):
        status, _ = await played(config, "missed-calls.yaml", tmp_path, endpoints=True)
    assert status == 0
    assert [[e["event"] for e in events] for events in fakes.zammad.values()] == [["newCall", "hangup"]] * 3
    assert {events[-1]["cause"] for events in fakes.zammad.values()} == {"noAnswer"}
    assert [(c["finish"]["STATUS_CODE"], c["finish"]["DURATION"]) for c in fakes.bitrix.values()] == [
        (304, 0)
    ] * 3
    # finished for the user it was registered for (the first extension it rang), not a queue
    assert all(
        c["finish"]["USER_PHONE_INNER"] == c["register"]["USER_PHONE_INNER"] for c in fakes.bitrix.values()
    )
    assert {c["hs_call_status"] for c in fakes.hubspot.values()} == {"NO_ANSWER"}
    assert [log["outcome"] for log in fakes.pipedrive.values()] == ["no_answer"] * 3
    assert [text.split(" at ")[0] for text in fakes.slack] == [
        ":telephone_receiver: Missed call from 447700900202 on SupportLine",
        ":telephone_receiver: Missed call from 447700900303 on SalesLine",
        ":telephone_receiver: Missed call from 447700900404 on MainLine",
    ]


async def test_an_outgoing_call_transferred_on_is_one_record_with_its_first_recording(tmp_path: Path) -> None:
    async with crms(tmp_path) as (fakes, config):
        status, _ = await played(config, "outgoing-transfer.yaml", tmp_path, endpoints=True)
    assert status == 0  # a second recording would have been refused (409) and retried
    calls = {
        chain: [(e["event"], e["from"], e["direction"]) for e in events]
        for chain, events in fakes.zammad.items()
    }
    assert calls == {
        "230907112005_87": [("newCall", "203", "out"), ("answer", "203", "out"), ("hangup", "203", "out")],
        "230907112235_88": [("newCall", "204", "out"), ("hangup", "204", "out")],
    }
    bitrix = sorted(fakes.bitrix.values(), key=lambda call: call["register"]["CALL_START_DATE"])
    assert [(c["register"]["TYPE"], c["register"]["USER_PHONE_INNER"]) for c in bitrix] == [
        (1, "203"),
        (1, "204"),
    ]
    assert [len(c.get("records", [])) for c in bitrix] == [1, 0]  # two recorded links, one record
    assert {c["hs_call_direction"] for c in fakes.hubspot.values()} == {"OUTBOUND"}
    logs = sorted(fakes.pipedrive.values(), key=lambda log: log["start_time"])
    assert [(log["outcome"], len(log.get("recordings", []))) for log in logs] == [
        ("connected", 1),
        ("no_answer", 0),
    ]


@pytest.mark.parametrize(
    "endpoint", ["zammad", "bitrix", "hubspot", "pipedrive", "slack", "classic", "json", "custom"]
)
async def test_a_preview_prints_each_request_and_sends_nothing(tmp_path: Path, endpoint: str) -> None:
    async with crms(tmp_path) as (fakes, config):
        scenario = "missed-calls.yaml" if endpoint == "slack" else "recording-variants.yaml"
        status, out = await played(config, scenario, tmp_path, preview=endpoint)
    assert status == 0
    assert fakes == Crms(ids=fakes.ids, archive=fakes.archive)  # nothing reached any CRM
    assert re.match(r"# 1\n(GET|POST) \{url\}", out)  # the endpoint's URL may hold a token
    assert not {ZAMMAD_TOKEN, BITRIX_CODE, HUBSPOT_TOKEN, PIPEDRIVE_TOKEN, "s3cr3t"} & set(
        re.split(r"[/?=&\s]", out)
    )
    if endpoint in ("bitrix", "hubspot", "pipedrive"):  # the id an earlier answer gave, stood in for
        assert "{call}" in out or "{log}" in out
